"""Mattes: chroma key, alpha channel, imported per-frame mattes, per-frame storage, temporal smoothing."""

from .chroma import ChromaKeyer, ChromaKeySettings, detect_black_bars, pick_key_colour
from .imported import read_matte_frames
from .provider import MatteStage
from .store import MatteStore

__all__ = ["ChromaKeyer", "ChromaKeySettings", "detect_black_bars", "pick_key_colour", "read_matte_frames",
           "MatteStage", "MatteStore"]
