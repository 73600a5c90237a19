"""Errors the training package raises to its callers, both worker-wide and re-exported here.

InvalidRequest comes from python_worker.errors; Cancelled (the job's cancel
event was set outside the training loop) from python_worker.jobs.
"""

from __future__ import annotations

from python_worker.errors import InvalidRequest
from python_worker.jobs import Cancelled

__all__ = ["Cancelled", "InvalidRequest"]
