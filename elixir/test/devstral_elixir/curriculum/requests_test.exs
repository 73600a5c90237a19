defmodule DevstralElixir.Curriculum.RequestsTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Curriculum.{Config, Requests}
  alias DevstralElixir.Proto.TrainRequest

  defp stage(kv) do
    {:ok, config} =
      Config.from_keyword([base_model: "m", dataset_dir: "/d", stages: [kv]], [], data_dir: "/x")

    hd(config.stages)
  end

  test "a stage becomes a TrainRequest; unset settings are proto zeros (worker defaults)" do
    stage =
      stage(
        epochs: 2,
        learning_rate: 1.0e-4,
        quantization: :none,
        regularizer: [kind: :ewc, weight: 0.5],
        lora: [
          r: 16,
          target_modules: ["q_proj"],
          train_embeddings: true,
          embeddings_learning_rate: 1.0e-5
        ],
        early_stopping_patience: -1,
        save_minutes: 2.5,
        packing: true
      )

    request =
      Requests.train(stage,
        job_id: "job-3",
        base_model: "/m",
        dataset_dir: "/d",
        output_dir: "/out/stage1",
        init_adapter: nil,
        general_eval: "/g.jsonl",
        resume: true
      )

    assert %TrainRequest{
             job_id: "job-3",
             stage: 1,
             resume: true,
             init_adapter: "",
             general_eval_path: "/g.jsonl"
           } = request

    config = request.config
    assert config.epochs == 2 and config.max_steps == 0
    assert config.learning_rate == 1.0e-4
    # Optional fields stay absent (nil) when unset, so an explicit 0 can mean 0.
    assert config.batch_size == 0 and config.warmup_ratio == nil
    assert config.lora.dropout == nil
    assert config.quantization == "none"
    assert config.regularizer == "ewc" and config.regularizer_weight == 0.5
    assert config.early_stopping_patience == -1
    assert config.packing
    assert config.lora.r == 16 and config.lora.alpha == 0.0
    assert config.lora.target_modules == ["q_proj"]
    assert config.save_minutes == 2.5
    assert config.lora.train_embeddings
    # It encodes, and decodes back to the same message.
    assert TrainRequest.decode!(TrainRequest.encode(request)) == request
  end

  test "the default quantization is left to the worker" do
    request =
      Requests.train(stage(max_steps: 3, learning_rate: 1),
        job_id: "j",
        base_model: "m",
        dataset_dir: "d",
        output_dir: "o"
      )

    assert request.config.quantization == ""
    assert request.config.regularizer == ""
    assert request.config.save_minutes == 0.0
    assert request.config.max_steps == 3
    assert request.eval_path == "/d/stage1/eval.jsonl"
  end
end
