"""Evaluation: how good a model (+ adapter) is on held-out text.

* loss.py: eval loss, the mean next-token loss over supervised tokens (used by
  training's before/after measure and by the Evaluate RPC);
* job.py: the Evaluate job: eval loss of a model on JSONL files, as events.
"""
