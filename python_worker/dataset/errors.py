"""The builder's request errors; a cancel is the worker-wide python_worker.jobs.Cancelled.

InvalidRequest is the worker-wide one (python_worker.errors), re-exported here:
both a ValueError and a WorkerError with INVALID_ARGUMENT.
"""

from __future__ import annotations

from python_worker.errors import InvalidRequest

__all__ = ["ConfigError", "InvalidRequest"]


class ConfigError(InvalidRequest):
    """A builder configuration value is invalid; the message names the field."""
