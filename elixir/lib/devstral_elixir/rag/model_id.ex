defmodule DevstralElixir.Rag.ModelId do
  @moduledoc """
  The `+rag` model ids: every served model id `ID` (the base model and each
  adapter) has a retrieval-augmented twin `ID+rag`. A request to it goes to
  the worker as `ID` with `GenerateRequest.retrieval` set, so the worker puts
  the memory's best hits into the prompt and returns them as `sources`.
  """

  alias DevstralElixir.Proto.Retrieval

  @suffix "+rag"

  @doc "The suffix that marks a retrieval-augmented model id."
  @spec suffix() :: String.t()
  def suffix, do: @suffix

  @doc """
  Splits a requested model id: `{"ID", true}` for `"ID+rag"` (with a
  non-empty `ID`), else `{name, false}`.
  """
  @spec split(String.t() | nil) :: {String.t() | nil, boolean()}
  def split(name) when is_binary(name) do
    base = String.replace_suffix(name, @suffix, "")
    if base != name and base != "", do: {base, true}, else: {name, false}
  end

  def split(name), do: {name, false}

  @doc "The `+rag` id of `id`."
  @spec augmented(String.t()) :: String.t()
  def augmented(id), do: id <> @suffix

  @doc "The served ids followed by their `+rag` twins, in the same order."
  @spec with_augmented([String.t()]) :: [String.t()]
  def with_augmented(ids), do: ids ++ Enum.map(ids, &augmented/1)

  @doc """
  The `Retrieval` a `+rag` request carries, from the host's RAG settings
  (`DevstralElixir.Config`'s `rag`: `top_k`, `min_score`, `collection`).
  """
  @spec retrieval(map()) :: Retrieval.t()
  def retrieval(settings) do
    %Retrieval{
      collection: Map.get(settings, :collection, ""),
      top_k: Map.get(settings, :top_k, 5),
      min_score: Map.get(settings, :min_score, 0.3) * 1.0
    }
  end
end
