defmodule DevstralElixir.Curriculum.EvalSets do
  @moduledoc """
  The two eval sets a stage's gate compares: Elixir and general code.

  A stage's eval split also holds the dataset's replay rows (general,
  non-Elixir code marked `"source": "replay..."`), which must not count as
  Elixir. So the split is divided by `source` into `stageN-elixir.jsonl` and,
  when no `general_eval` file is configured, `stageN-general.jsonl` (both
  written atomically under the run's `eval/` directory). A split without
  replay rows is used as it is.
  """

  alias DevstralElixir.Curriculum.Files

  @type sets :: %{elixir: Path.t(), general: Path.t() | nil}

  @doc """
  The eval sets of stage `number`: `eval_set` divided as described, and
  `general_eval` when given. Files go to `out_dir`.
  """
  @spec prepare(Path.t(), Path.t() | nil, Path.t(), pos_integer()) ::
          {:ok, sets()} | {:error, String.t()}
  def prepare(eval_set, general_eval, out_dir, number) do
    with :ok <- exists(eval_set, "stages[#{number}].eval_set"),
         :ok <- if(general_eval, do: exists(general_eval, "general_eval"), else: :ok),
         {:ok, {elixir_rows, replay_rows}} <- split(eval_set) do
      cond do
        elixir_rows == [] ->
          {:error, no_elixir(eval_set, number)}

        replay_rows == [] ->
          {:ok, %{elixir: eval_set, general: general_eval}}

        true ->
          elixir = Path.join(out_dir, "stage#{number}-elixir.jsonl")
          general = general_eval || Path.join(out_dir, "stage#{number}-general.jsonl")

          with :ok <- Files.write_atomic(elixir, lines(elixir_rows)),
               :ok <-
                 if(general_eval, do: :ok, else: Files.write_atomic(general, lines(replay_rows))) do
            {:ok, %{elixir: elixir, general: general}}
          end
      end
    end
  end

  @doc """
  Checks, without writing anything, that `prepare/4` would succeed: the
  files exist and `eval_set` holds Elixir rows. Used before any training.
  """
  @spec check(Path.t(), Path.t() | nil, pos_integer()) :: :ok | {:error, String.t()}
  def check(eval_set, general_eval, number) do
    with :ok <- exists(eval_set, "stages[#{number}].eval_set"),
         :ok <- if(general_eval, do: exists(general_eval, "general_eval"), else: :ok),
         {:ok, {elixir_rows, _replay_rows}} <- split(eval_set) do
      if elixir_rows == [], do: {:error, no_elixir(eval_set, number)}, else: :ok
    end
  end

  @doc "True for a row (a decoded JSON object) that is replay data rather than Elixir."
  @spec replay?(map()) :: boolean()
  def replay?(%{"source" => source}) when is_binary(source),
    do: String.starts_with?(source, "replay")

  def replay?(_row), do: false

  defp no_elixir(eval_set, number),
    do: "stages[#{number}].eval_set: #{eval_set} has no Elixir rows (empty, or only replay rows)"

  defp lines(rows), do: Enum.map(rows, &[&1, ?\n])

  defp exists(path, field) do
    if File.regular?(path), do: :ok, else: {:error, "#{field}: #{path} does not exist"}
  end

  defp split(path) do
    path
    |> File.stream!()
    |> Stream.with_index(1)
    |> Enum.reduce_while({[], []}, fn {line, number}, {elixir, replay} ->
      line = String.trim_trailing(line)

      cond do
        line == "" -> {:cont, {elixir, replay}}
        not String.contains?(line, "replay") -> {:cont, {[line | elixir], replay}}
        true -> classify(line, number, path, elixir, replay)
      end
    end)
    |> case do
      {:error, _} = error -> error
      {elixir, replay} -> {:ok, {Enum.reverse(elixir), Enum.reverse(replay)}}
    end
  end

  defp classify(line, number, path, elixir, replay) do
    case DevstralElixir.Web.Json.decode(line) do
      {:ok, row} when is_map(row) ->
        if replay?(row),
          do: {:cont, {elixir, [line | replay]}},
          else: {:cont, {[line | elixir], replay}}

      _ ->
        {:halt, {:error, "#{path}:#{number} is not a JSON object"}}
    end
  end
end
