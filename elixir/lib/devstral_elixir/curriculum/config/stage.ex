defmodule DevstralElixir.Curriculum.Config.Stage do
  @moduledoc """
  One validated stage of a curriculum (see `DevstralElixir.Curriculum.Config`).

  Training fields left nil mean "the worker's default" (they go over the wire
  as proto3 zero values). `max_steps`, when set, wins over `epochs`.
  `eval_set` and `general_eval` are absolute paths once loaded.
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
    regularizer: %{kind: :none, weight: nil}
  ]

  @type t :: %__MODULE__{
          number: pos_integer(),
          name: String.t(),
          epochs: pos_integer() | nil,
          max_steps: pos_integer() | nil,
          learning_rate: float(),
          batch_size: pos_integer() | nil,
          gradient_accumulation_steps: pos_integer() | nil,
          max_seq_length: pos_integer() | nil,
          warmup_ratio: float() | nil,
          max_grad_norm: float() | nil,
          save_steps: pos_integer() | nil,
          eval_steps: pos_integer() | nil,
          early_stopping_patience: integer() | nil,
          early_stopping_threshold: float() | nil,
          quantization: :nf4 | :none | nil,
          gradient_checkpointing: boolean(),
          packing: boolean(),
          seed: non_neg_integer() | nil,
          lora: %{
            r: pos_integer() | nil,
            alpha: float() | nil,
            dropout: float() | nil,
            target_modules: [String.t()] | nil,
            train_embeddings: boolean(),
            embeddings_learning_rate: float() | nil
          },
          regularizer: %{kind: :none | :l2 | :ewc, weight: float() | nil},
          eval_set: Path.t(),
          gate: Gate.t()
        }
end
