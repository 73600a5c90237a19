"""The one error type plain functions raise; the transports turn it into a gRPC status.

Code below the servicer never touches a ServicerContext: it raises WorkerError
with the status code and a message that names what was wrong, and the servicer
aborts the call with exactly that (over gRPC and over the port alike).
"""

from __future__ import annotations

import grpc


class WorkerError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"WorkerError({self.code.name}, {self.message!r})"


class InvalidRequest(WorkerError, ValueError):
    """A request that can never succeed as written; the message names the input, field or line.

    Raised before any work starts (the dataset builder and training both
    validate up front), so the servicer answers INVALID_ARGUMENT straight away
    instead of starting a job that is bound to fail. It is a ValueError (what
    callers of the plain functions catch) and a WorkerError with
    INVALID_ARGUMENT (what the servicer's wrappers turn into a status), so
    either `except` clause routes it right.
    """

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)

    def __str__(self) -> str:
        return self.message


def invalid_argument(message: str) -> WorkerError:
    return WorkerError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> WorkerError:
    return WorkerError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> WorkerError:
    return WorkerError(grpc.StatusCode.FAILED_PRECONDITION, message)


def unavailable(message: str) -> WorkerError:
    return WorkerError(grpc.StatusCode.UNAVAILABLE, message)


def out_of_range(message: str) -> WorkerError:
    return WorkerError(grpc.StatusCode.OUT_OF_RANGE, message)


def unimplemented(message: str) -> WorkerError:
    return WorkerError(grpc.StatusCode.UNIMPLEMENTED, message)
