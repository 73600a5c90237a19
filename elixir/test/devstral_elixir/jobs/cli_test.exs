defmodule DevstralElixir.Jobs.CliTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Jobs.Cli

  test "flags become job args; paths are expanded, hub ids are not" do
    opts =
      Cli.parse!("curriculum.run", [
        "--config",
        "cfg.exs",
        "--dataset",
        "data/ds",
        "--base-model",
        "Qwen/Qwen2.5-Coder-1.5B",
        "--max-steps",
        "5"
      ])

    args = Cli.args(opts)
    assert args["config"] == Path.expand("cfg.exs")
    assert args["dataset_dir"] == Path.expand("data/ds")
    assert args["base_model"] == "Qwen/Qwen2.5-Coder-1.5B"
    assert args["max_steps"] == 5
    refute Map.has_key?(args, "run")

    assert Cli.args(Cli.parse!("t", ["--base-model", "./m"]))["base_model"] == Path.expand("./m")
  end

  test "train's extra switches" do
    opts =
      Cli.parse!("train", ["--stage", "2", "--init-adapter", "a"],
        stage: :integer,
        init_adapter: :string
      )

    assert Cli.args(opts) == %{"stage" => 2, "init_adapter" => Path.expand("a")}
  end

  test "bad flags raise Mix errors that name them" do
    assert_raise Mix.Error, ~r/invalid option --max-steps=x/, fn ->
      Cli.parse!("curriculum.run", ["--max-steps", "x"])
    end

    assert_raise Mix.Error, ~r/invalid option --bogus/, fn ->
      Cli.parse!("curriculum.run", ["--bogus"])
    end

    assert_raise Mix.Error, ~r/unexpected argument "extra"/, fn ->
      Cli.parse!("train", ["extra"])
    end
  end

  test "args are checked as the runner will, config file included" do
    assert_raise Mix.Error, ~r/no such curriculum config file/, fn ->
      Cli.check_args!(%{"config" => "/nonexistent/curriculum.exs"}, false)
    end

    assert_raise Mix.Error, ~r/--stage is required/, fn -> Cli.check_args!(%{}, true) end

    assert_raise Mix.Error, "--max-steps must be a positive integer, got -3", fn ->
      Cli.check_args!(%{"max_steps" => -3}, false)
    end

    assert :ok = Cli.check_args!(%{"max_steps" => 2}, false)
  end
end
