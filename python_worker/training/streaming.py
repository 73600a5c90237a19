"""Run a job function in a thread and hand its events out as an iterator.

The trainer reports through callbacks deep inside its loop, so a generator
cannot yield from there; the job runs in its own thread and the caller's
iterator reads a queue. If the caller stops iterating (a client went away),
the job's cancel event is set and the thread joined: nothing is left running,
and a training job still saves its checkpoint on the way out.

The mechanism is python_worker.threads.run_streaming (the dataset builder's RPC
uses it too); it is re-exported here under the name the training code uses.
"""

from __future__ import annotations

from python_worker.threads import run_streaming

__all__ = ["run_streaming"]
