"""End to end: the exact bytes of streamed (SSE) responses from the real host.

HTTP/1.1 requests must get a real chunked body (`Transfer-Encoding: chunked`,
read here by h11, a strict HTTP/1.1 state machine) on a connection that stays
usable for the next request. HTTP/1.0 requests must get a close-delimited body
(`Connection: close`, no transfer coding) and the server must close. Either
way the body is exactly `data: {...}\\n\\n` events ending with `data: [DONE]\\n\\n`.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import h11
import pytest

from tests.host_process import HostProcess, post_json

MAX_TOKENS = 12
ENDPOINTS = {
    "/v1/completions": {"prompt": "defmodule Stack do\n  def push("},
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "Reverse a list in Elixir."}]},
}


def body_for(path: str, stream: bool = True) -> bytes:
    return json.dumps({**ENDPOINTS[path], "max_tokens": MAX_TOKENS, "temperature": 0, "stream": stream}).encode()


def sse_events(body: bytes) -> list[Any]:
    """The decoded events of an SSE body that must be exactly `data: X\\n\\n` blocks, the last `[DONE]`."""
    assert body.endswith(b"data: [DONE]\n\n"), body[-80:]
    blocks = body.split(b"\n\n")
    assert blocks[-1] == b"", "the body must end right after the [DONE] event"
    events = []
    for block in blocks[:-2]:
        assert block.startswith(b"data: ") and b"\n" not in block, block[:80]
        events.append(json.loads(block[len(b"data: ") :]))
    assert blocks[-2] == b"data: [DONE]"
    return events


def streamed_text(path: str, events: list[Any]) -> str:
    assert events, "no data events before [DONE]"
    if path == "/v1/chat/completions":
        assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert all(e["object"] == "chat.completion.chunk" for e in events)
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    else:
        assert all(e["object"] == "text_completion" for e in events)
        text = "".join(e["choices"][0]["text"] for e in events)
    assert events[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    return text


def expected_text(host: HostProcess, path: str) -> str:
    """The same greedy request, not streamed: the text the stream must add up to."""
    status, answer = post_json(f"{host.url}{path}", body_for(path, stream=False))
    assert status == 200, answer
    choice = answer["choices"][0]
    return choice["message"]["content"] if "message" in choice else choice["text"]


def request_bytes(path: str, version: str, extra: str = "") -> bytes:
    body = body_for(path)
    head = (
        f"POST {path} HTTP/{version}\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def read_until_close(sock: socket.socket) -> bytes:
    received = []
    while chunk := sock.recv(65536):
        received.append(chunk)
    return b"".join(received)


def split_head(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"duplicate header {name}"
        headers[name.lower()] = value.strip()
    return status_line, headers, body


class H11Connection:
    """One HTTP/1.1 connection driven by h11; keeps every byte it read."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.conn = h11.Connection(h11.CLIENT)
        self.raw = bytearray()

    def exchange(self, method: str, path: str, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> Any:
        sent = [("Host", "127.0.0.1"), ("Content-Length", str(len(body))), *(headers or [])]
        if body:
            sent.append(("Content-Type", "application/json"))
        self.sock.sendall(self.conn.send(h11.Request(method=method, target=path, headers=sent)))
        self.sock.sendall(self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage()))
        response, data, chunks = None, bytearray(), 0
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                received = self.sock.recv(65536)
                self.raw += received
                self.conn.receive_data(received)
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                data += event.data
                chunks += event.chunk_end
            elif isinstance(event, h11.EndOfMessage):
                return response, bytes(data), chunks

    def next_cycle(self) -> None:
        self.conn.start_next_cycle()

    def close(self) -> None:
        self.sock.close()


def header(response: Any, name: str) -> str | None:
    values = [v.decode() for k, v in response.headers if k == name.encode()]
    assert len(values) <= 1, f"{name} sent {len(values)} times"
    return values[0] if values else None


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_http11_stream_is_chunked_and_keeps_the_connection(host: HostProcess, path: str) -> None:
    expected = expected_text(host, path)
    connection = H11Connection(host.port)
    try:
        for round_ in range(2):  # the second stream reuses the connection
            response, body, chunks = connection.exchange("POST", path, body_for(path))
            assert response.status_code == 200
            assert header(response, "transfer-encoding") == "chunked"
            assert header(response, "content-length") is None
            assert (header(response, "connection") or "").lower() != "close"
            assert header(response, "content-type").startswith("text/event-stream")
            assert chunks >= 2, f"round {round_}: {chunks} chunk(s)"
            assert streamed_text(path, sse_events(body)) == expected
            connection.next_cycle()
        # And a plain JSON request after the streams, on the same connection.
        response, body, _ = connection.exchange("GET", "/v1/models")
        assert response.status_code == 200
        assert json.loads(body)["object"] == "list"
    finally:
        connection.close()
    # Raw check, independent of h11: after the headers, the body starts with a
    # hex chunk size line and the zero-size chunk ends it.
    first_body = bytes(connection.raw).split(b"\r\n\r\n", 1)[1]
    size_line, _, rest = first_body.partition(b"\r\n")
    assert int(size_line, 16) > 0 and rest.startswith(b"data: ")


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_http10_stream_is_close_delimited(host: HostProcess, path: str) -> None:
    expected = expected_text(host, path)
    with socket.create_connection(("127.0.0.1", host.port), timeout=60) as sock:
        sock.sendall(request_bytes(path, "1.0"))
        raw = read_until_close(sock)  # returns only once the server has closed
    status_line, headers, body = split_head(raw)
    assert status_line.split()[1] == "200", status_line
    assert headers.get("connection", "").lower() == "close"
    assert "transfer-encoding" not in headers
    assert "content-length" not in headers
    # No chunk-size lines: the body is the event stream itself.
    assert body.startswith(b"data: {")
    assert streamed_text(path, sse_events(body)) == expected


def test_http10_keep_alive_request_still_gets_a_closed_stream(host: HostProcess) -> None:
    path = "/v1/completions"
    with socket.create_connection(("127.0.0.1", host.port), timeout=60) as sock:
        sock.sendall(request_bytes(path, "1.0", "Connection: Keep-Alive\r\n"))
        raw = read_until_close(sock)
    _, headers, body = split_head(raw)
    assert headers.get("connection", "").lower() == "close"
    assert "transfer-encoding" not in headers
    sse_events(body)


def test_http11_connection_close_is_chunked_then_closed(host: HostProcess) -> None:
    path = "/v1/chat/completions"
    with socket.create_connection(("127.0.0.1", host.port), timeout=60) as sock:
        sock.sendall(request_bytes(path, "1.1", "Connection: close\r\n"))
        raw = read_until_close(sock)
    _, headers, body = split_head(raw)
    assert headers.get("transfer-encoding") == "chunked"
    # h11 reads the chunked body and checks it ends with the zero-size chunk.
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="POST", target=path, headers=[("Host", "x"), ("Content-Length", "0")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    conn.receive_data(b"")  # the server closed
    data = b""
    while True:
        event = conn.next_event()
        assert event is not h11.NEED_DATA, "the chunked body was cut short"
        if isinstance(event, h11.Data):
            data += event.data
        if isinstance(event, h11.EndOfMessage):
            break
    assert not body.startswith(b"data: ")  # chunk framing comes first
    sse_events(data)


def test_a_client_that_goes_away_stops_its_generation(host: HostProcess) -> None:
    marker = "generation cancelled after"
    before = host.log_path.read_text(errors="replace").count(marker)
    body = json.dumps({"prompt": "defmodule Long do\n", "max_tokens": 1500, "temperature": 0, "stream": True})
    with socket.create_connection(("127.0.0.1", host.port), timeout=60) as sock:
        sock.sendall(
            f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        received = b""
        while b"data: " not in received:
            chunk = sock.recv(65536)
            assert chunk, "the server closed before the first event"
            received += chunk
    # Closed after the first event: the host must notice and cancel the call.
    deadline = time.monotonic() + 30
    while True:
        lines = [line for line in host.log_path.read_text(errors="replace").splitlines() if marker in line]
        if len(lines) > before:
            break
        assert time.monotonic() < deadline, f"the generation was never cancelled:\n{host.log_tail()}"
        time.sleep(0.1)  # polling the log with a deadline
    assert int(lines[-1].split(marker)[1].split()[0]) < 1500
    # The host still serves streams afterwards.
    status, answer = post_json(f"{host.url}/v1/completions", body_for("/v1/completions", stream=False))
    assert status == 200, answer
