"""homevitals: home health monitoring. The shared package: the vocabulary every stage shares
(``vocab``), the runtime every daemon runs on (``infra``) and the composition roots (``roots``)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
