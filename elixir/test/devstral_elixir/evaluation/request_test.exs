defmodule DevstralElixir.Evaluation.RequestTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Config
  alias DevstralElixir.Evaluation.{Request, Runner}
  alias DevstralElixir.Proto.EvaluateRequest

  @moduletag :tmp_dir

  setup %{tmp_dir: dir} do
    %{config: Config.load(%{"DATA_DIR" => dir})}
  end

  test "a shipped set with the host's model, defaults left to the worker", %{config: config} do
    req = Request.build!(%{"problems" => "humaneval-elixir"}, config, "j", "out")

    assert %EvaluateRequest{
             job_id: "j",
             benchmarks: ["humaneval-elixir"],
             completions_path: "",
             samples_per_problem: 0,
             max_problems: 0,
             adapter: ""
           } = req

    assert req.model == config.model
    assert req.params.temperature == 0.0
    assert req.output_dir == Path.expand("out")
  end

  test "several samples sample at 0.8 unless told; given completions need no model",
       %{config: config, tmp_dir: dir} do
    req = Request.build!(%{"problems" => "mbpp-elixir", "samples" => 10}, config, "j", dir)
    assert req.params.temperature == 0.8
    assert req.samples_per_problem == 10

    completions = Path.join(dir, "c.jsonl")
    File.write!(completions, "")
    args = %{"problems" => "humaneval-elixir", "completions" => completions, "limit" => 5}
    req = Request.build!(args, config, "j", dir)
    assert {req.model, req.completions_path, req.max_problems} == {"", completions, 5}
  end

  test "model ids: the served id, BASE:RUN/stageN, a directory", %{config: config, tmp_dir: dir} do
    assert Request.model!("tiny-code", nil, config) == {config.model, ""}

    adapter = Path.join([dir, "adapters", "run1", "stage2"])
    File.mkdir_p!(adapter)
    File.write!(Path.join(adapter, "adapter_config.json"), "{}")
    assert Request.model!("tiny-code:run1/stage2", nil, config) == {config.model, adapter}

    assert_raise ArgumentError, ~r/names no adapter/, fn ->
      Request.model!("tiny-code:run1/stage9", nil, config)
    end

    assert Request.model!(dir, nil, config) == {dir, ""}

    assert_raise ArgumentError, ~r/model: no model "nope"/, fn ->
      Request.model!("nope", nil, config)
    end
  end

  test "bad arguments are named", %{config: config, tmp_dir: dir} do
    for {args, message} <- [
          {%{}, ~r/problems is required/},
          {%{"problems" => "nope"}, ~r/"nope" is neither a shipped set/},
          {%{"problems" => "mbpp-elixir", "samples" => -1}, ~r/samples must be an integer >= 0/},
          {%{"problems" => "mbpp-elixir", "temperature" => -1}, ~r/temperature must be/},
          {%{"problems" => "mbpp-elixir", "completions" => "/no.jsonl"},
           ~r/\/no.jsonl does not exist/}
        ] do
      assert_raise ArgumentError, message, fn -> Request.build!(args, config, "j", dir) end
    end

    assert Runner.validate_args(%{"problems" => "nope"}) |> elem(0) == :error
  end

  test "loss and FIM datasets: with or without a problem set, and they need the model",
       %{config: config, tmp_dir: dir} do
    loss = Path.join(dir, "stage1-eval.jsonl")
    fim = Path.join(dir, "stage2-eval.jsonl")
    File.write!(loss, "")
    File.write!(fim, "")
    args = %{"loss_datasets" => [loss], "fim_datasets" => [fim], "fim_limit" => 50}
    req = Request.build!(args, config, "j", dir)
    assert {req.benchmarks, req.loss_datasets, req.fim_datasets} == {[], [loss], [fim]}
    assert req.max_fim_examples == 50 and req.model == config.model

    # Completions do not make the model unnecessary when there is loss to measure.
    completions = Path.join(dir, "c.jsonl")
    File.write!(completions, "")
    args = Map.merge(args, %{"problems" => "humaneval-elixir", "completions" => completions})
    assert Request.build!(args, config, "j", dir).model == config.model

    assert_raise ArgumentError, ~r/fim_datasets: .*nope.jsonl does not exist/, fn ->
      Request.build!(%{"fim_datasets" => ["/nope.jsonl"]}, config, "j", dir)
    end
  end

  test "results go to --out, else DATA_DIR/evaluations/SET-jobID", %{config: config} do
    assert Runner.out_dir(%{"out" => "/x/y"}, config, 3) == "/x/y"

    assert Runner.out_dir(%{"problems" => "/a/b/mine.jsonl"}, config, 3) ==
             Path.join([config.data_dir, "evaluations", "mine-job3"])

    assert Runner.out_dir(%{"loss_datasets" => ["/x"]}, config, 4) ==
             Path.join([config.data_dir, "evaluations", "evaluation-job4"])
  end
end
