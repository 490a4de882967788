"""Benchmarks, run as ``python -m phviz.bench [section ...]``.

Each section is a module here with a ``report(quick=False)`` function that measures
side by side in one process and prints its figures (medians of repeats).
"""

SECTIONS = ("core", "landscape", "device", "explorer", "sweep", "serve")
