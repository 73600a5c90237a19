"""The two ways a build stops early: a bad request, or a cancel.

InvalidRequest is both a ValueError (what the brief promises the servicer) and a
WorkerError with INVALID_ARGUMENT (what the servicer already maps to a status),
so either `except` clause routes it right.
"""

from __future__ import annotations

import grpc

from python_worker.errors import WorkerError


class InvalidRequest(WorkerError, ValueError):
    """The request cannot be built: the message names the input, field or line."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)

    def __str__(self) -> str:
        return self.message


class ConfigError(InvalidRequest):
    """A builder configuration value is invalid; the message names the field."""


class BuildCancelled(Exception):
    """The cancel event was set; the temporary output was removed."""
