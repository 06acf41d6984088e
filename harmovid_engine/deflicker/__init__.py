"""Lighting deflicker: removes frame-to-frame lighting jitter of harmonized talent, keeping motion and real changes."""

from .analytic import AnalyticDeflicker, PairDelta, Sample, alpha_roi, make_sample

__all__ = ["AnalyticDeflicker", "PairDelta", "Sample", "alpha_roi", "make_sample"]
