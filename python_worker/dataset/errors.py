"""The two ways a build stops early: a bad request, or a cancel.

InvalidRequest is the worker-wide one (python_worker.errors), re-exported here:
both a ValueError and a WorkerError with INVALID_ARGUMENT.
"""

from __future__ import annotations

from python_worker.errors import InvalidRequest

__all__ = ["BuildCancelled", "ConfigError", "InvalidRequest"]


class ConfigError(InvalidRequest):
    """A builder configuration value is invalid; the message names the field."""


class BuildCancelled(Exception):
    """The cancel event was set; the temporary output was removed."""
