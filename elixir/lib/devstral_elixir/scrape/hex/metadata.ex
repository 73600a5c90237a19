defmodule DevstralElixir.Scrape.Hex.Metadata do
  @moduledoc """
  Reads a Hex `metadata.config`: a sequence of Erlang terms such as
  `{<<"name">>,<<"jason">>}.`, parsed with `:erl_scan` and
  `:erl_parse.parse_term/1` one term at a time, so nothing in it is ever
  evaluated. The result is a map with string keys and JSON-friendly values
  (binaries become strings, proplists become maps).
  """

  @max_size 1024 * 1024

  @doc """
  Parses `metadata.config`. Anything that is not a sequence of
  `{Key, Value}.` terms with binary keys, or lacks a binary `name` and
  `version`, is `{:error, {:malformed_metadata, detail}}`.
  """
  @spec parse(binary()) :: {:ok, map()} | {:error, {:malformed_metadata, String.t()}}
  def parse(binary) when byte_size(binary) > @max_size,
    do: error("metadata.config is larger than #{@max_size} bytes")

  def parse(binary) do
    with {:ok, chars} <- characters(binary),
         {:ok, tokens} <- scan(chars),
         {:ok, terms} <- parse_terms(split_terms(tokens, [], []), []),
         {:ok, map} <- to_map(terms) do
      check_required(map)
    end
  end

  defp characters(binary) do
    case :unicode.characters_to_list(binary) do
      chars when is_list(chars) -> {:ok, chars}
      _ -> error("metadata.config is not valid UTF-8")
    end
  end

  defp scan(chars) do
    case :erl_scan.string(chars) do
      {:ok, tokens, _end} -> {:ok, tokens}
      {:error, {line, module, info}, _} -> error("line #{line}: #{module.format_error(info)}")
    end
  end

  # Splits the token list after each `.`, keeping the dot with its term.
  defp split_terms([], [], acc), do: Enum.reverse(acc)

  defp split_terms([], current, acc),
    do: Enum.reverse([{:unterminated, Enum.reverse(current)} | acc])

  defp split_terms([{:dot, _} = dot | rest], current, acc),
    do: split_terms(rest, [], [Enum.reverse([dot | current]) | acc])

  defp split_terms([token | rest], current, acc), do: split_terms(rest, [token | current], acc)

  defp parse_terms([], acc), do: {:ok, Enum.reverse(acc)}

  defp parse_terms([{:unterminated, tokens} | _], _acc),
    do: error("the last term is not terminated by a dot (line #{line(tokens)})")

  defp parse_terms([tokens | rest], acc) do
    case :erl_parse.parse_term(tokens) do
      {:ok, term} -> parse_terms(rest, [term | acc])
      {:error, {line, module, info}} -> error("line #{line}: #{module.format_error(info)}")
    end
  end

  defp line([token | _]), do: :erl_scan.line(token)
  defp line([]), do: "?"

  defp to_map(terms) do
    Enum.reduce_while(terms, {:ok, %{}}, fn
      {key, value}, {:ok, map} when is_binary(key) ->
        {:cont, {:ok, Map.put(map, key, to_json(value))}}

      other, _ ->
        {:halt, error("expected a {<<\"key\">>, Value} pair, got: #{inspect(other, limit: 5)}")}
    end)
  end

  defp check_required(map) do
    cond do
      not is_binary(map["name"]) -> error("no binary \"name\"")
      not is_binary(map["version"]) -> error("no binary \"version\"")
      true -> {:ok, map}
    end
  end

  @doc """
  Turns a parsed Erlang term into JSON-friendly data: UTF-8 binaries stay
  strings, lists of `{binary, _}` pairs become maps, other tuples become
  lists, `true`/`false`/`nil`/`undefined` become booleans and `nil`, other
  atoms become strings.
  """
  @spec to_json(term()) :: term()
  def to_json(term) when is_binary(term) do
    if String.valid?(term), do: term, else: Base.encode64(term)
  end

  def to_json(term) when is_boolean(term) or is_number(term), do: term
  def to_json(term) when term in [nil, :undefined], do: nil
  def to_json(term) when is_atom(term), do: Atom.to_string(term)

  def to_json(term) when is_map(term),
    do: Map.new(term, fn {k, v} -> {key(k), to_json(v)} end)

  def to_json(term) when is_list(term) do
    if term != [] and Enum.all?(term, &match?({k, _} when is_binary(k) or is_atom(k), &1)),
      do: Map.new(term, fn {k, v} -> {key(k), to_json(v)} end),
      else: Enum.map(term, &to_json/1)
  end

  def to_json(term) when is_tuple(term), do: term |> Tuple.to_list() |> Enum.map(&to_json/1)
  def to_json(term), do: inspect(term)

  defp key(k) when is_binary(k), do: to_json(k)
  defp key(k) when is_atom(k), do: Atom.to_string(k)
  defp key(k), do: inspect(k)

  defp error(detail), do: {:error, {:malformed_metadata, "metadata.config: " <> detail}}
end
