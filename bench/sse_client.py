"""One timed streamed completion through the host, for the benches that measure streaming.

`timed_completion` posts a greedy `/v1/completions` with `stream: true` and
records when the request went out, when each SSE event carrying text arrived,
when the stream ended, and the completion tokens the final usage chunk reports.
Each bench derives its own figures (time to first token, gaps, events) from that.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class StreamTiming:
    start: float
    end: float = 0.0
    text_events: list[float] = field(default_factory=list)  # perf_counter() of each SSE event with text
    completion_tokens: int = 0

    @property
    def ttft(self) -> float:
        """Seconds from the request to the first text (0 when none came)."""
        return self.text_events[0] - self.start if self.text_events else 0.0

    @property
    def gaps(self) -> list[float]:
        """Seconds between consecutive text events."""
        return [b - a for a, b in zip(self.text_events, self.text_events[1:])]


def timed_completion(
    port: int, prompt: str, tokens: int, timeout: float, before_request: Callable[[], object] | None = None
) -> StreamTiming:
    """Stream one greedy completion of `tokens` tokens; `before_request` runs just before the clock starts."""
    body = json.dumps(
        {
            "prompt": prompt,
            "max_tokens": tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if before_request is not None:
        before_request()
    timing = StreamTiming(start=time.perf_counter())
    connection.request("POST", "/v1/completions", body, {"content-type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200, response.read()
    for line in response:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        event = json.loads(line[6:])
        if event["choices"] and event["choices"][0]["text"]:
            timing.text_events.append(time.perf_counter())
        if event.get("usage"):
            timing.completion_tokens = event["usage"]["completion_tokens"]
    timing.end = time.perf_counter()
    connection.close()
    return timing
