"""Evaluation: how good a model (+ adapter) is.

* loss.py: eval loss, the mean next-token loss over supervised tokens (used by
  training's before/after measure and by the Evaluate RPC);
* job.py: the Evaluate job: eval loss, FIM exact match / edit similarity
  (fim_eval.py) and execution-based pass@k, as events;
* problems.py: problem sets (shipped MultiPL-E Elixir sets, MultiPL-E or McEval
  JSONL), unsolvable problems, stop tokens, --completions files;
* sampling.py: completions from the loaded model;
* sandbox.py: runs one `elixir main.exs` under limits (bubblewrap, rlimits);
* execute.py: the pass rule (nonce-checked ExUnit result + exit 0), statuses,
  parallel runs; scoring.py: summary.json and results.jsonl;
* pass_at_k.py: the unbiased pass@k estimator.
"""
