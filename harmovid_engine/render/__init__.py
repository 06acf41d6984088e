"""Rendering: the per-frame graph (:class:`Compositor`) and render jobs (generators with progress and cancel)."""

from .job import CancelToken, RenderProgress, render, resolve_range
from .pipeline import LAYERS, Compositor, FrameLayers

__all__ = ["CancelToken", "RenderProgress", "render", "resolve_range", "LAYERS", "Compositor", "FrameLayers"]
