"""A ServicerContext for calls that arrive over the port.

It implements the part of grpc.aio.ServicerContext the servicer may use, with
the same semantics, so servicer methods run unchanged over both transports.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

import grpc

log = logging.getLogger(__name__)


class PortAbort(Exception):
    """Raised by PortContext.abort; the port turns it into an ERROR frame."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class PortContext:
    def __init__(self, call_id: int, method: str, write: Callable[[Any], Awaitable[None]]) -> None:
        self.call_id = call_id
        self.method = method
        self._write = write
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._cancelled = False
        self._done = False
        self._callbacks: list[Callable[[Any], None]] = []

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[tuple[str, str]] = ()
    ) -> NoReturn:
        if code == grpc.StatusCode.OK:  # grpc.aio rejects this too
            raise ValueError("abort() needs a non-OK status code")
        self._code, self._details = code, details
        raise PortAbort(code, details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    async def write(self, message: Any) -> None:
        """Send one stream item (for streaming handlers written without yield)."""
        await self._write(message)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        # The port is a private pipe to the host: no metadata and no auth.
        return ()

    def peer(self) -> str:
        return "port"

    def time_remaining(self) -> float | None:
        return None  # the host has no deadlines on the port; it cancels instead

    def set_trailing_metadata(self, trailing_metadata: Sequence[tuple[str, str]]) -> None:
        pass

    async def send_initial_metadata(self, initial_metadata: Sequence[tuple[str, str]]) -> None:
        pass

    def cancelled(self) -> bool:
        return self._cancelled

    def done(self) -> bool:
        return self._done

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        """callback(context) runs when the call ends, however it ends."""
        if self._done:
            callback(self)
        else:
            self._callbacks.append(callback)

    # grpc's sync ServicerContext name for the same hook.
    def add_callback(self, callback: Callable[[], None]) -> bool:
        self.add_done_callback(lambda _context: callback())
        return True

    def finish(self, *, cancelled: bool = False) -> None:
        """Called by the port when the call has ended."""
        if self._done:
            return
        self._cancelled = cancelled
        self._done = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("done callback of call %d failed", self.call_id)
