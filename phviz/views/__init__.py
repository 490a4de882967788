"""Panel/HoloViews views of a port-Hamiltonian training run (the only GUI code)."""

from .explorer import Explorer

__all__ = ["Explorer"]
