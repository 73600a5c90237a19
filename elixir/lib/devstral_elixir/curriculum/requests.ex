defmodule DevstralElixir.Curriculum.Requests do
  @moduledoc """
  Builds the worker's `TrainRequest` from a loaded stage. Pure: nothing here touches the worker or the disk.

  Settings left nil in the config go over the wire as proto3 zero values,
  which the worker reads as "use the default".
  """

  alias DevstralElixir.Curriculum.Config.Stage
  alias DevstralElixir.Proto.{LoraConfig, TrainConfig, TrainRequest}

  @doc """
  The request that trains `stage`. Options: `:job_id`, `:base_model`,
  `:dataset_dir`, `:output_dir` (required), `:init_adapter`,
  `:general_eval`, `:resume` and `:validate_only` (the worker checks the
  request and trains nothing). The stage's `eval_set` goes as `eval_path`:
  the worker measures it before and after training.
  """
  @spec train(Stage.t(), keyword()) :: TrainRequest.t()
  def train(%Stage{} = stage, opts) do
    opts =
      Keyword.validate!(opts, [
        :job_id,
        :base_model,
        :dataset_dir,
        :output_dir,
        init_adapter: nil,
        general_eval: nil,
        resume: false,
        validate_only: false
      ])

    %TrainRequest{
      job_id: opts[:job_id],
      base_model: opts[:base_model],
      dataset_dir: opts[:dataset_dir],
      stage: stage.number,
      output_dir: opts[:output_dir],
      config: train_config(stage),
      resume: opts[:resume],
      init_adapter: opts[:init_adapter] || "",
      general_eval_path: opts[:general_eval] || "",
      eval_path: stage.eval_set || "",
      validate_only: opts[:validate_only]
    }
  end

  @doc "The stage's training settings as a `TrainConfig`."
  @spec train_config(Stage.t()) :: TrainConfig.t()
  def train_config(%Stage{} = stage) do
    %TrainConfig{
      epochs: stage.epochs || 0,
      max_steps: stage.max_steps || 0,
      learning_rate: stage.learning_rate || 0.0,
      batch_size: stage.batch_size || 0,
      gradient_accumulation_steps: stage.gradient_accumulation_steps || 0,
      max_seq_length: stage.max_seq_length || 0,
      warmup_ratio: stage.warmup_ratio,
      max_grad_norm: stage.max_grad_norm || 0.0,
      save_steps: stage.save_steps || 0,
      save_minutes: stage.save_minutes || 0.0,
      eval_steps: stage.eval_steps || 0,
      early_stopping_patience: stage.early_stopping_patience || 0,
      early_stopping_threshold: stage.early_stopping_threshold || 0.0,
      quantization: stage.quantization || "",
      gradient_checkpointing: stage.gradient_checkpointing,
      packing: stage.packing,
      regularizer: stage.regularizer.kind || "",
      regularizer_weight: stage.regularizer.weight || 0.0,
      seed: stage.seed || 0,
      lora: %LoraConfig{
        r: stage.lora.r || 0,
        alpha: stage.lora.alpha || 0.0,
        dropout: stage.lora.dropout,
        target_modules: stage.lora.target_modules || [],
        train_embeddings: stage.lora.train_embeddings,
        embeddings_learning_rate: stage.lora.embeddings_learning_rate || 0.0
      }
    }
  end
end
