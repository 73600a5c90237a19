"""Job events are the worker-wide model in python_worker.job_events; this name re-exports it.

Kept only for modules not yet moved to `from python_worker.job_events import ...`
(python_worker.evaluation); delete it once nothing imports it.
"""

from python_worker.job_events import CANCELLED, COMPLETED, FAILED, LOG, METRICS, PROGRESS, Emit, Event, finite

__all__ = ["CANCELLED", "COMPLETED", "FAILED", "LOG", "METRICS", "PROGRESS", "Emit", "Event", "finite"]
