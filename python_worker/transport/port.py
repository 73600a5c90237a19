"""The Erlang port transport: the Worker service over fds 3 (in) and 4 (out).

Every frame is a 4-byte big-endian length and a serialized PortFrame (the
host opens the port with {:packet, 4} and :nouse_stdio). Protocol:

  host -> worker   REQUEST {call_id, method, payload}   opens a call
                   CANCEL {call_id}                     stops it
  worker -> host   STREAM_ITEM {call_id, payload}       one per response message
                   END {call_id}                        the call succeeded
                   ERROR {call_id, status_code, message}  the call failed

Calls run concurrently as asyncio tasks; frames of different calls interleave,
and each frame is written whole under a lock. Errors not tied to a call (an
oversized or unparsable frame) are ERROR frames with call_id 0; the worker keeps
serving after them. A CANCEL cancels the call's task (the generation loop stops
within a token) and the call closes with ERROR CANCELLED. EOF on fd 3 means the
host is gone: `serve` returns and the worker exits.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from contextlib import aclosing
from dataclasses import dataclass
from typing import IO, Any

import grpc
from google.protobuf import message as protobuf_message
from google.protobuf import message_factory

from python_worker.proto import worker_pb2 as pb
from python_worker.transport.context import PortAbort, PortContext

log = logging.getLogger(__name__)

HEADER_BYTES = 4
_DISCARD_CHUNK = 1 << 16
_READ_LIMIT = 1 << 20  # StreamReader buffer high-water mark

Kind = pb.PortFrame.Kind


@dataclass(frozen=True)
class MethodSpec:
    name: str
    request_type: type[protobuf_message.Message]
    server_streaming: bool


def method_table(service: str = "Worker") -> dict[str, MethodSpec]:
    """The methods of the service, read from the proto descriptor (one source of truth)."""
    descriptor = pb.DESCRIPTOR.services_by_name[service]
    return {
        m.name: MethodSpec(m.name, message_factory.GetMessageClass(m.input_type), m.server_streaming)
        for m in descriptor.methods
        if not m.client_streaming  # a port call carries exactly one request
    }


class PortTransport:
    def __init__(
        self,
        servicer: Any,
        reader: IO[bytes],
        writer: IO[bytes],
        *,
        max_frame_bytes: int,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self._servicer = servicer
        self._reader_file = reader
        self._writer_file = writer
        self._max_frame_bytes = max_frame_bytes
        self._shutdown_timeout = shutdown_timeout
        self._methods = method_table()
        self._calls: dict[int, tuple[asyncio.Task[None], PortContext]] = {}
        self._write_lock = asyncio.Lock()
        self._writer: asyncio.StreamWriter | None = None
        self._closed = False

    # -- connection -------------------------------------------------------------

    async def serve(self) -> None:
        """Serve frames until EOF on the input (or the host stops reading output)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_READ_LIMIT)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), self._reader_file)
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, self._writer_file)
        self._writer = asyncio.StreamWriter(transport, protocol, None, loop)
        log.info("port transport serving (max frame %d bytes)", self._max_frame_bytes)
        try:
            while not self._closed:
                frame = await self._read_frame(reader)
                if frame is None:
                    log.info("EOF on the port input: the host is gone")
                    return
                if isinstance(frame, pb.PortFrame):
                    await self._dispatch(frame)
        except (BrokenPipeError, ConnectionResetError):
            log.info("the host stopped reading the port output")

    async def _read_frame(self, reader: asyncio.StreamReader) -> pb.PortFrame | bool | None:
        """The next frame; None at EOF; False when a bad frame was answered and skipped."""
        try:
            header = await reader.readexactly(HEADER_BYTES)
        except asyncio.IncompleteReadError:
            return None
        size = int.from_bytes(header, "big")
        if size > self._max_frame_bytes:
            # Skip it in chunks rather than allocating what the host claims.
            remaining = size
            while remaining:
                chunk = await reader.read(min(remaining, _DISCARD_CHUNK))
                if not chunk:
                    return None
                remaining -= len(chunk)
            await self._send_error(
                0,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"frame of {size} bytes exceeds the maximum of {self._max_frame_bytes} bytes "
                "(MAX_FRAME_BYTES); discarded",
            )
            return False
        try:
            body = await reader.readexactly(size)
        except asyncio.IncompleteReadError:
            return None
        try:
            return pb.PortFrame.FromString(body)
        except protobuf_message.DecodeError as exc:
            await self._send_error(
                0, grpc.StatusCode.INVALID_ARGUMENT, f"frame of {size} bytes is not a PortFrame: {exc}"
            )
            return False

    async def close(self) -> None:
        """Cancel every open call (each answers ERROR CANCELLED if the host still reads)."""
        self._closed = True
        tasks = [task for task, _ in self._calls.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self._shutdown_timeout)
        if self._writer is not None:
            self._writer.close()

    # -- calls ------------------------------------------------------------------

    async def _dispatch(self, frame: pb.PortFrame) -> None:
        call_id = frame.call_id
        if frame.kind == Kind.CANCEL:
            call = self._calls.get(call_id)
            if call is not None:  # else it already finished: a normal race
                task, context = call
                context.finish(cancelled=True)
                task.cancel()
            return
        if frame.kind != Kind.REQUEST:
            await self._send_error(
                call_id,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unexpected frame kind {Kind.Name(frame.kind)} from the host (expected REQUEST or CANCEL)",
            )
            return
        if call_id == 0:
            await self._send_error(0, grpc.StatusCode.INVALID_ARGUMENT, "REQUEST needs a nonzero call_id")
            return
        if call_id in self._calls:
            # Answered on call 0 so the open call with this id is left undisturbed.
            await self._send_error(
                0, grpc.StatusCode.ALREADY_EXISTS, f"call_id {call_id} is already open; REQUEST ignored"
            )
            return
        spec = self._methods.get(frame.method)
        if spec is None:
            await self._send_error(call_id, grpc.StatusCode.UNIMPLEMENTED, f"unknown method {frame.method!r}")
            return
        context = PortContext(call_id, spec.name, lambda message: self._send_item(call_id, message))
        task = asyncio.create_task(self._run_call(spec, frame.payload, context), name=f"port-call-{call_id}")
        self._calls[call_id] = (task, context)

    async def _run_call(self, spec: MethodSpec, payload: bytes, context: PortContext) -> None:
        call_id = context.call_id
        try:
            try:
                request = spec.request_type.FromString(payload)
            except protobuf_message.DecodeError as exc:
                raise PortAbort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{spec.name}: payload is not a {spec.request_type.DESCRIPTOR.name}: {exc}",
                ) from exc
            result = getattr(self._servicer, spec.name)(request, context)
            if inspect.isasyncgen(result):
                async with aclosing(result) as stream:
                    async for message in stream:
                        await self._send_item(call_id, message)
            else:
                response = await result
                if not spec.server_streaming and response is not None:
                    await self._send_item(call_id, response)
            code = context.code()
            if code not in (None, grpc.StatusCode.OK):
                # A handler that set_code()s and returns, as grpc allows.
                await self._send_error(call_id, code, context.details())
            else:
                await self._send(pb.PortFrame(call_id=call_id, kind=Kind.END))
        except asyncio.CancelledError:
            reason = "worker is shutting down" if self._closed else "cancelled by the host"
            await self._send_quietly(call_id, grpc.StatusCode.CANCELLED, reason)
        except PortAbort as exc:
            await self._send_quietly(call_id, exc.code, exc.details)
        except Exception as exc:
            log.exception("%s (call %d) failed", spec.name, call_id)
            await self._send_quietly(call_id, grpc.StatusCode.UNKNOWN, f"{spec.name} failed: {exc!r}")
        finally:
            self._calls.pop(call_id, None)
            context.finish(cancelled=context.cancelled())

    # -- output -----------------------------------------------------------------

    async def _send_item(self, call_id: int, message: Any) -> None:
        await self._send(pb.PortFrame(call_id=call_id, kind=Kind.STREAM_ITEM, payload=message.SerializeToString()))

    async def _send_error(self, call_id: int, code: grpc.StatusCode, message: str) -> None:
        if call_id == 0:
            log.warning("port error: %s", message)
        await self._send(pb.PortFrame(call_id=call_id, kind=Kind.ERROR, status_code=code.value[0], message=message))

    async def _send_quietly(self, call_id: int, code: grpc.StatusCode, message: str) -> None:
        """Send a closing ERROR, tolerating a host that has gone away meanwhile."""
        try:
            await self._send_error(call_id, code, message)
        except (BrokenPipeError, ConnectionResetError, RuntimeError) as exc:
            log.debug("could not report the end of call %d: %r", call_id, exc)

    async def _send(self, frame: pb.PortFrame) -> None:
        if self._writer is None:
            raise RuntimeError("the port transport is not serving")
        body = frame.SerializeToString()
        async with self._write_lock:
            # One write() per frame: a frame is never interleaved with another.
            self._writer.write(len(body).to_bytes(HEADER_BYTES, "big") + body)
            await self._writer.drain()
