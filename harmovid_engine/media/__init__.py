"""Media I/O: probe, frame sources (video, image sequence, still) and writers (H.264, ProRes 4444, PNG)."""

from .probe import MediaInfo, probe
from .source import FrameSource, open_source
from .writer import FORMATS, FrameWriter, open_writer

__all__ = ["MediaInfo", "probe", "FrameSource", "open_source", "FrameWriter", "open_writer", "FORMATS"]
