"""A test-side Erlang port: writes PortFrames to the worker's fd 3, reads its fd 4."""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from google.protobuf.message import Message

from python_worker.proto import worker_pb2 as pb

Kind = pb.PortFrame.Kind
CLOSING = (Kind.END, Kind.ERROR)


@dataclass
class Call:
    call_id: int
    frames: list[pb.PortFrame] = field(default_factory=list)

    @property
    def closing(self) -> pb.PortFrame | None:
        return self.frames[-1] if self.frames and self.frames[-1].kind in CLOSING else None

    def items(self, response_type: type[Message]) -> list[Message]:
        return [response_type.FromString(f.payload) for f in self.frames if f.kind == Kind.STREAM_ITEM]


class PortClient:
    def __init__(self, write_fd: int, read_fd: int) -> None:
        self._write_fd = write_fd
        self._read_fd = read_fd
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._frames: queue.Queue[pb.PortFrame | None] = queue.Queue()
        # Frames received but not yet claimed by a call, by call id.
        self._pending: dict[int, list[pb.PortFrame]] = defaultdict(list)
        self.order: list[tuple[int, int]] = []  # (call_id, kind) in arrival order
        self.eof = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    # -- raw frames ---------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        with self._write_lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._write_fd, view) :]

    def send(self, frame: pb.PortFrame) -> None:
        body = frame.SerializeToString()
        self.send_raw(len(body).to_bytes(4, "big") + body)

    def close_input(self) -> None:
        """EOF on the worker's fd 3."""
        os.close(self._write_fd)

    def _read_exactly(self, n: int) -> bytes | None:
        chunks = []
        while n:
            chunk = os.read(self._read_fd, n)
            if not chunk:
                return None
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _pump(self) -> None:
        while True:
            header = self._read_exactly(4)
            body = self._read_exactly(int.from_bytes(header, "big")) if header else None
            if body is None:
                self.eof.set()
                self._frames.put(None)
                return
            self._frames.put(pb.PortFrame.FromString(body))

    def next_frame(self, deadline: float) -> pb.PortFrame:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("timed out waiting for a frame")
        try:
            frame = self._frames.get(timeout=remaining)
        except queue.Empty:
            raise AssertionError("timed out waiting for a frame") from None
        if frame is None:
            self._frames.put(None)  # keep reporting EOF
            raise AssertionError("the worker closed its output (fd 4)")
        self.order.append((frame.call_id, frame.kind))
        return frame

    # -- calls --------------------------------------------------------------------

    def request(self, method: str, message: Message | bytes) -> int:
        call_id = next(self._ids)
        payload = message if isinstance(message, bytes) else message.SerializeToString()
        self.send(pb.PortFrame(call_id=call_id, method=method, kind=Kind.REQUEST, payload=payload))
        return call_id

    def cancel(self, call_id: int) -> None:
        self.send(pb.PortFrame(call_id=call_id, kind=Kind.CANCEL))

    def next_for(self, call_id: int, timeout: float = 30.0) -> pb.PortFrame:
        """The next frame of one call; frames of other calls are kept for later."""
        if self._pending[call_id]:
            return self._pending[call_id].pop(0)
        deadline = time.monotonic() + timeout
        while True:
            frame = self.next_frame(deadline)
            if frame.call_id == call_id:
                return frame
            self._pending[frame.call_id].append(frame)

    def wait_closed(self, call_id: int, timeout: float = 60.0) -> Call:
        """All frames of a call up to and including its END or ERROR."""
        call = Call(call_id)
        deadline = time.monotonic() + timeout
        while call.closing is None:
            call.frames.append(self.next_for(call_id, max(deadline - time.monotonic(), 0.001)))
        return call

    def call(self, method: str, message: Message | bytes, timeout: float = 60.0) -> Call:
        return self.wait_closed(self.request(method, message), timeout)
