defmodule DevstralElixir.Scrape.Json do
  @moduledoc "JSON for the scrapers, on Debian's `:jiffy`: maps with string keys, `null` as `nil`."

  @doc "Decodes `body`; `{:error, detail}` for anything that is not valid JSON."
  @spec decode(binary()) :: {:ok, term()} | {:error, String.t()}
  def decode(body) when is_binary(body) do
    {:ok, :jiffy.decode(body, [:return_maps, :use_nil])}
  catch
    _kind, {:error, {pos, reason}} -> {:error, "invalid JSON at byte #{pos}: #{reason}"}
    _kind, reason -> {:error, "invalid JSON: #{inspect(reason)}"}
  end

  @doc "Encodes `term` (maps, lists, strings, numbers, booleans, `nil`) as one line of JSON."
  @spec encode(term()) :: binary()
  def encode(term), do: IO.iodata_to_binary(:jiffy.encode(term, [:use_nil]))
end
