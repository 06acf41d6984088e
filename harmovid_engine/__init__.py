"""HarmoVid engine: everything that computes (media, project, mattes, relighting, compositing, rendering).

This package never imports Qt; the CLI, tests, benchmarks and render workers run without a display.
"""

__version__ = "0.1.0"
