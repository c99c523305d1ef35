"""homevitals: home health monitoring, shared vocabulary and CLI."""

__all__ = ["__version__"]

__version__ = "0.1.0"
