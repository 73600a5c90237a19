"""The Python ML worker: `python -m python_worker serve|port` (see __main__.py)."""

__version__ = "0.1.0"
