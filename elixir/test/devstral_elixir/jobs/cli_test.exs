defmodule DevstralElixir.Jobs.CLITest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Jobs.{CLI, CurriculumArgs}

  @switches CurriculumArgs.switches() ++ CLI.job_switches()

  test "flags become job args; paths are expanded, hub ids are not" do
    flags = CLI.parse_flags!("curriculum.run", ~w(--config cfg.exs --dataset data/ds
        --base-model Qwen/Qwen2.5-Coder-1.5B --max-steps 5 --priority 2), @switches)

    assert flags[:priority] == 2
    args = CurriculumArgs.args(flags)
    assert args["config"] == Path.expand("cfg.exs")
    assert args["dataset_dir"] == Path.expand("data/ds")
    assert args["base_model"] == "Qwen/Qwen2.5-Coder-1.5B"
    assert args["max_steps"] == 5
    refute Map.has_key?(args, "run")
    refute Map.has_key?(args, "priority")

    flags = CLI.parse_flags!("t", ["--base-model", "./m"], @switches)
    assert CurriculumArgs.args(flags)["base_model"] == Path.expand("./m")
  end

  test "train's extra switches" do
    flags =
      CLI.parse_flags!("train", ["--stage", "2", "--init-adapter", "a"],
        stage: :integer,
        init_adapter: :string
      )

    assert CurriculumArgs.args(flags) == %{"stage" => 2, "init_adapter" => Path.expand("a")}
  end

  test "bad flags raise Mix errors that name the task and the flag" do
    for {argv, message} <- [
          {["--max-steps", "x"], ~s(mix curriculum.run: invalid value "x" for --max-steps)},
          {["--bogus"], "mix curriculum.run: unknown option --bogus"},
          {["--config"], "mix curriculum.run: --config needs a value"},
          {["extra"], "mix curriculum.run: unexpected arguments extra"}
        ] do
      error =
        assert_raise Mix.Error, fn -> CLI.parse_flags!("curriculum.run", argv, @switches) end

      assert error.message =~ message
    end

    assert {[out: "o"], ["a", "b"]} = CLI.parse!("scrape.local", ~w(a --out o b), out: :string)
  end

  test "values are checked naming the flag" do
    assert CLI.positive!("t", "--limit", nil) == nil
    assert CLI.positive!("t", "--limit", 3) == 3

    assert_raise Mix.Error, "mix t: --limit must be a positive integer, got 0", fn ->
      CLI.positive!("t", "--limit", 0)
    end

    assert CLI.date!("t", "--since", "2024-01-31") == ~D[2024-01-31]

    assert_raise Mix.Error, ~r/--since must be a date like 2024-01-31/, fn ->
      CLI.date!("t", "--since", "2024-13-01")
    end

    assert CLI.list(" a, b,,c ") == ["a", "b", "c"]
    assert CLI.given(a: 1, b: nil) == [a: 1]
  end

  test "args are checked as the runner will, config file included" do
    assert_raise Mix.Error, ~r/no such curriculum config file/, fn ->
      CurriculumArgs.check!("curriculum.run", %{"config" => "/nonexistent/curriculum.exs"}, false)
    end

    assert_raise Mix.Error, ~r/mix train: .*--stage is required/, fn ->
      CurriculumArgs.check!("train", %{}, true)
    end

    assert_raise Mix.Error,
                 "mix curriculum.run: --max-steps must be a positive integer, got -3",
                 fn ->
                   CurriculumArgs.check!("curriculum.run", %{"max_steps" => -3}, false)
                 end

    assert :ok = CurriculumArgs.check!("curriculum.run", %{"max_steps" => 2}, false)
  end
end
