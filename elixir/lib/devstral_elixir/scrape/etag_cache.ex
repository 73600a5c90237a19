defmodule DevstralElixir.Scrape.EtagCache do
  @moduledoc """
  Remembers the `ETag` and body of listing responses under a directory, so a
  repeat listing sends `If-None-Match` and a `304 Not Modified` reuses the
  stored body. One pair of files per URL, named by the URL's SHA-256, each
  written to a temporary name and renamed.
  """

  @doc "The stored `{etag, body}` for `url`, or `nil`."
  @spec lookup(Path.t(), String.t()) :: {String.t(), binary()} | nil
  def lookup(dir, url) do
    base = base(dir, url)

    with {:ok, etag} <- File.read(base <> ".etag"),
         {:ok, body} <- File.read(base <> ".body") do
      {etag, body}
    else
      _ -> nil
    end
  end

  @doc "Stores `etag` and `body` for `url`."
  @spec store(Path.t(), String.t(), String.t(), binary()) :: :ok
  def store(dir, url, etag, body) do
    File.mkdir_p!(dir)
    base = base(dir, url)
    # Body first: a reader that finds the etag always finds its body.
    write_atomic(base <> ".body", body)
    write_atomic(base <> ".etag", etag)
  end

  defp base(dir, url),
    do: Path.join(dir, Base.encode16(:crypto.hash(:sha256, url), case: :lower))

  defp write_atomic(path, data) do
    tmp = "#{path}.#{System.unique_integer([:positive])}.tmp"
    File.write!(tmp, data)
    File.rename!(tmp, path)
  end
end
