"""Relighting: lighting analysis of talent and plate, the analytic harmonizer, compositing extras."""

from .engine import AnalyticEngine, RelightParams

__all__ = ["AnalyticEngine", "RelightParams"]
