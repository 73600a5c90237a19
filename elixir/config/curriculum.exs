# The three-stage curriculum that `mix curriculum.run` (and `mix train --stage
# N`) runs by default: the one home of the stages' training settings.
#
# Evaluated by DevstralElixir.Curriculum.Config (see its docs for every key),
# with `data_dir` (DATA_DIR) and `root` (the repository root) bound. Training
# settings left out take the worker's defaults; the worker checks every one
# (`python -m python_worker.training --help-config` lists them) before a job
# starts. Flags override:
#
#     mix curriculum.run --dataset DIR --base-model PATH --max-steps N
[
  name: "elixir",

  # The tiny code base shipped in the repository (pretrained on Erlang and
  # Python, never Elixir, by scripts/pretrain_tiny_model.py), whatever DATA_DIR
  # is; a real checkpoint directory or a hub id (already in the local cache)
  # works the same way.
  base_model: Path.join(root, "models/tiny-code"),

  # Written by BuildDataset (`mix curriculum.build`): stageN/{train,eval}.jsonl.
  dataset_dir: Path.join(data_dir, "datasets/curriculum"),

  # Every stage's adapter and metrics.json go to adapters_dir/RUN/stageN/.
  adapters_dir: Path.join(data_dir, "adapters"),

  # General-code (non-Elixir) eval set for the forgetting guard. nil derives
  # it from the `replay` rows of each stage's eval set.
  general_eval: nil,

  # Promote a stage only if its Elixir eval loss improves by at least 1% and
  # its general-code eval loss worsens by at most 5%.
  gate: [min_elixir_improvement_pct: 1.0, max_general_regression_pct: 5.0],

  # Execution-based evaluation (what `mix evaluate` measures) of the base model
  # before stage 1 and of every stage's adapter after training: pass@1 and the
  # compile rate go to the stage's metrics.json, run.json and RUN/REPORT.md.
  # Off while `problems` is nil; with e.g. problems: "humaneval-elixir", a gate
  # may add min_pass_at_1_gain: 0.02 (pass@1 >= base + 0.02) and
  # min_compile_rate: 0.9.
  execution_eval: [problems: nil, limit: 40],

  # Shared by every stage; a stage's own keys win (nested lists merge).
  defaults: [
    batch_size: 4,
    gradient_accumulation_steps: 4,
    # Whole modules and the FIM/instruction pairs mined from them: at 1024
    # tokens many rows lose their context; 2048 is the seed projects' length.
    max_seq_length: 2048,
    # Lets 2048-token batches fit a 24 GB GPU, for ~30% more compute.
    gradient_checkpointing: true,
    warmup_ratio: 0.03,
    max_grad_norm: 0.3,
    save_steps: 50,
    # Also checkpoint every 10 minutes: on slow hardware 50 steps can take hours.
    save_minutes: 10,
    eval_steps: 50,
    early_stopping_patience: 3,
    quantization: :nf4,
    seed: 42,
    # The seed projects' QLoRA settings: every attention and MLP projection.
    lora: [
      r: 32,
      alpha: 64,
      dropout: 0.05,
      target_modules: ~w(q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)
    ],
    regularizer: [kind: :none]
  ],
  stages: [
    # Continued pre-training on Elixir/Erlang files.
    [
      name: "general Elixir/Erlang",
      epochs: 1,
      learning_rate: 2.0e-4,
      packing: true,
      eval_set: "stage1/eval.jsonl"
    ],
    # FIM and instruction pairs mined from code; L2 towards stage 1's weights
    # on top of the dataset's replay mix guards against forgetting. One epoch:
    # a second pass over pairs mined from the same files mostly memorises them
    # (early stopping would end it anyway). L2 rather than EWC: it needs no
    # general-code set for a Fisher estimate, and the gate already measures
    # forgetting on general code after every stage.
    [
      name: "tasks and FIM",
      epochs: 1,
      learning_rate: 1.0e-4,
      packing: true,
      regularizer: [kind: :l2, weight: 0.1],
      eval_set: "stage2/eval.jsonl"
    ],
    # Book-style explanations and exercises, in chapter order (so no packing,
    # which reorders rows); a lower rate.
    [
      name: "book",
      epochs: 2,
      learning_rate: 5.0e-5,
      regularizer: [kind: :l2, weight: 0.1],
      eval_set: "stage3/eval.jsonl"
    ]
  ]
]
