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
