defmodule DevstralElixir.Curriculum.Config.Schema do
  @moduledoc """
  A small `Keyword.validate!`-style checker that reports the first problem
  with its full field path: `"stages[2].learning_rate must be a positive
  number, got -1"`.

  A schema is a list of `{key, check, default}`, where `default` is a value
  or `:required` and `check` is a function returning `{:ok, normalised}` or
  `{:error, "must be ..."}`. The helpers below build the usual checks.
  """

  @type check :: (term() -> {:ok, term()} | {:error, String.t()})
  @type schema :: [{atom(), check(), term() | :required}]

  @doc """
  Checks the keyword list `value` against `schema`, returning a map of every
  key (defaults filled in). `where` is the path of `value` itself ("" at the
  top, "stages[2]", "stages[2].lora").
  """
  @spec validate(term(), schema(), String.t()) :: {:ok, map()} | {:error, String.t()}
  def validate(value, schema, where) do
    known = Enum.map(schema, &elem(&1, 0))

    with :ok <- keyword(value, where),
         :ok <- no_unknown(value, known, where),
         :ok <- no_duplicates(value, where) do
      Enum.reduce_while(schema, {:ok, %{}}, fn {key, check, default}, {:ok, acc} ->
        case field(value, key, check, default, where) do
          {:ok, checked} -> {:cont, {:ok, Map.put(acc, key, checked)}}
          {:error, _} = error -> {:halt, error}
        end
      end)
    end
  end

  @doc "The path of `key` inside `where`."
  @spec path(String.t(), atom() | String.t()) :: String.t()
  def path("", key), do: to_string(key)
  def path(where, key), do: "#{where}.#{key}"

  @doc "A `must be ...` error for a value."
  @spec must(String.t(), term()) :: {:error, String.t()}
  def must(what, value), do: {:error, "must be #{what}, got #{inspect(value)}"}

  # Checks

  @doc "A positive integer."
  @spec pos_integer() :: check()
  def pos_integer,
    do: &if(is_integer(&1) and &1 > 0, do: {:ok, &1}, else: must("a positive integer", &1))

  @doc "An integer (its range is the worker's to judge)."
  @spec integer() :: check()
  def integer, do: &if(is_integer(&1), do: {:ok, &1}, else: must("an integer", &1))

  @doc "A number, as a float (its range is the worker's to judge)."
  @spec number() :: check()
  def number, do: &if(is_number(&1), do: {:ok, &1 / 1}, else: must("a number", &1))

  @doc "An atom or a string, as a string (which names are valid is the worker's to judge)."
  @spec name() :: check()
  def name do
    fn
      value when is_atom(value) and not is_nil(value) and not is_boolean(value) ->
        {:ok, Atom.to_string(value)}

      value when is_binary(value) ->
        {:ok, value}

      value ->
        must("a name (an atom or a string)", value)
    end
  end

  @doc "An integer >= 0."
  @spec non_neg_integer() :: check()
  def non_neg_integer,
    do: &if(is_integer(&1) and &1 >= 0, do: {:ok, &1}, else: must("an integer >= 0", &1))

  @doc "A number > 0 (integers become floats)."
  @spec pos_number() :: check()
  def pos_number,
    do: &if(is_number(&1) and &1 > 0, do: {:ok, &1 / 1}, else: must("a positive number", &1))

  @doc "A number >= 0 (integers become floats)."
  @spec non_neg_number() :: check()
  def non_neg_number,
    do: &if(is_number(&1) and &1 >= 0, do: {:ok, &1 / 1}, else: must("a number >= 0", &1))

  @doc "A number in [0, 1) (integers become floats)."
  @spec fraction() :: check()
  def fraction,
    do:
      &if(is_number(&1) and &1 >= 0 and &1 < 1,
        do: {:ok, &1 / 1},
        else: must("a number in [0, 1)", &1)
      )

  @doc "A boolean."
  @spec boolean() :: check()
  def boolean, do: &if(is_boolean(&1), do: {:ok, &1}, else: must("true or false", &1))

  @doc "A non-empty string."
  @spec string() :: check()
  def string do
    fn
      value when is_binary(value) and value != "" -> {:ok, value}
      value -> must("a non-empty string", value)
    end
  end

  @doc "A non-empty list of non-empty strings."
  @spec strings() :: check()
  def strings do
    fn value ->
      if is_list(value) and value != [] and Enum.all?(value, &(is_binary(&1) and &1 != "")),
        do: {:ok, value},
        else: must("a non-empty list of strings", value)
    end
  end

  @doc "One of `choices` (atoms), given as the atom or its name; returns the atom."
  @spec one_of([atom()]) :: check()
  def one_of(choices) do
    fn value ->
      case Enum.find(choices, &(&1 == value or Atom.to_string(&1) == value)) do
        nil -> must("one of #{Enum.map_join(choices, ", ", &inspect/1)}", value)
        choice -> {:ok, choice}
      end
    end
  end

  @doc "`check`, or nil."
  @spec nilable(check()) :: check()
  def nilable(check) do
    fn
      nil -> {:ok, nil}
      value -> check.(value)
    end
  end

  @doc "A nested keyword list checked against `schema`; the result is a map."
  @spec nested(schema()) :: {:nested, schema()}
  def nested(schema), do: {:nested, schema}

  # Helpers

  defp field(value, key, check, default, where) do
    case Keyword.fetch(value, key) do
      :error when default == :required ->
        {:error, "#{path(where, key)} is required"}

      :error ->
        run_check(check, default, path(where, key), true)

      {:ok, given} ->
        run_check(check, given, path(where, key), false)
    end
  end

  defp run_check({:nested, schema}, given, path, _default?), do: validate(given, schema, path)
  # Defaults are trusted: nil defaults of non-nilable checks stay nil.
  defp run_check(_check, given, _path, true), do: {:ok, given}

  defp run_check(check, given, path, false) do
    case check.(given) do
      {:ok, checked} -> {:ok, checked}
      {:error, what} -> {:error, "#{path} #{what}"}
    end
  end

  defp keyword(value, where) do
    if is_list(value) and Keyword.keyword?(value),
      do: :ok,
      else: {:error, "#{label(where)} must be a keyword list, got #{inspect(value)}"}
  end

  defp no_unknown(value, known, where) do
    case Enum.find(Keyword.keys(value), &(&1 not in known)) do
      nil ->
        :ok

      key ->
        {:error,
         "#{label(where)} has an unknown key #{inspect(key)}; known keys: " <>
           Enum.map_join(known, ", ", &inspect/1)}
    end
  end

  defp no_duplicates(value, where) do
    keys = Keyword.keys(value)

    case keys -- Enum.uniq(keys) do
      [] -> :ok
      [key | _] -> {:error, "#{label(where)} sets #{inspect(key)} more than once"}
    end
  end

  defp label(""), do: "the curriculum config"
  defp label(where), do: where
end
