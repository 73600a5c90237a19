"""QLoRA training and eval-loss evaluation for the Train and Evaluate RPCs.

Entry points:
  * rpc.train_events / rpc.evaluate_events: the RPCs (evaluation itself is python_worker.evaluation) as plain functions (proto in, JobEvents out);
  * python -m python_worker.training: one stage from the command line (see __main__.py).
"""

from python_worker.training.errors import InvalidRequest

__all__ = ["InvalidRequest"]
