"""Errors the training package raises to its callers."""

from __future__ import annotations

import grpc

from python_worker.errors import WorkerError


class InvalidRequest(WorkerError, ValueError):
    """A request that can never succeed as written; the message names the field.

    Raised before any model is loaded, so the servicer answers INVALID_ARGUMENT
    straight away instead of starting a job that is bound to fail. It is a
    ValueError (what callers of these plain functions catch) and a WorkerError
    with INVALID_ARGUMENT (what the servicer's wrappers turn into a status).
    """

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)

    def __str__(self) -> str:
        return self.message


class Cancelled(Exception):
    """The job's cancel event was set while it was outside the training loop."""
