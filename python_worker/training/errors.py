"""Errors the training package raises to its callers.

InvalidRequest is the worker-wide one (python_worker.errors), re-exported here.
"""

from __future__ import annotations

from python_worker.errors import InvalidRequest

__all__ = ["Cancelled", "InvalidRequest"]


class Cancelled(Exception):
    """The job's cancel event was set while it was outside the training loop."""
