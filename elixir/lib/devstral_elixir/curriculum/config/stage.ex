defmodule DevstralElixir.Curriculum.Config.Stage do
  @moduledoc """
  One validated stage of a curriculum (see `DevstralElixir.Curriculum.Config`).

  Training fields left nil mean "the worker's default" (they go over the wire
  as proto3 zero values). The host checks only that each has the type its
  wire field needs; what values are valid is the worker's to say (it is asked
  with `validate_only` before anything runs). `eval_set` is an absolute path
  once loaded.
  """

  alias DevstralElixir.Curriculum.Gate

  defstruct [
    :number,
    :name,
    :epochs,
    :max_steps,
    :learning_rate,
    :batch_size,
    :gradient_accumulation_steps,
    :max_seq_length,
    :warmup_ratio,
    :max_grad_norm,
    :save_steps,
    :save_minutes,
    :eval_steps,
    :early_stopping_patience,
    :early_stopping_threshold,
    :quantization,
    :seed,
    :eval_set,
    :gate,
    gradient_checkpointing: false,
    packing: false,
    lora: %{},
    regularizer: %{kind: nil, weight: nil}
  ]

  @type t :: %__MODULE__{
          number: pos_integer(),
          name: String.t(),
          epochs: integer() | nil,
          max_steps: integer() | nil,
          learning_rate: float() | nil,
          batch_size: integer() | nil,
          gradient_accumulation_steps: integer() | nil,
          max_seq_length: integer() | nil,
          warmup_ratio: float() | nil,
          max_grad_norm: float() | nil,
          save_steps: integer() | nil,
          save_minutes: float() | nil,
          eval_steps: integer() | nil,
          early_stopping_patience: integer() | nil,
          early_stopping_threshold: float() | nil,
          quantization: String.t() | nil,
          gradient_checkpointing: boolean(),
          packing: boolean(),
          seed: non_neg_integer() | nil,
          lora: %{
            r: integer() | nil,
            alpha: float() | nil,
            dropout: float() | nil,
            target_modules: [String.t()] | nil,
            train_embeddings: boolean(),
            embeddings_learning_rate: float() | nil
          },
          regularizer: %{kind: String.t() | nil, weight: float() | nil},
          eval_set: Path.t(),
          gate: Gate.t()
        }
end
