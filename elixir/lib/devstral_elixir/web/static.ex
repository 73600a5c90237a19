defmodule DevstralElixir.Web.Static do
  @moduledoc """
  Serves the web UI's static files from `priv/static`: `app.js` and
  `app.css`, and under `vendor/` the npm libraries `make assets` copies
  there (htmx and its SSE extension, markdown-it, DOMPurify, highlight.js).
  Nothing is loaded from another origin.
  """

  alias DevstralElixir.Web.{Json, Request}

  @types %{
    ".js" => "text/javascript; charset=utf-8",
    ".css" => "text/css; charset=utf-8",
    ".svg" => "image/svg+xml",
    ".png" => "image/png",
    ".ico" => "image/x-icon"
  }

  @doc "The static root directory."
  @spec root() :: Path.t()
  def root, do: Path.join(to_string(:code.priv_dir(:devstral_elixir)), "static")

  @doc "A file under the static root by its path segments; 404 for anything else."
  @spec serve([String.t()]) :: Request.response()
  def serve(segments), do: file(root(), segments)

  @doc """
  A file under `dir` by its path segments, with a content type from its
  extension (#{Enum.join(Map.keys(@types), ", ")} only); 404 for other
  types, missing files and segments that could leave `dir`.
  """
  @spec file(Path.t(), [String.t()]) :: Request.response()
  def file(dir, segments) do
    type = Map.get(@types, segments |> List.last() |> to_string() |> Path.extname())

    with true <- type != nil and safe?(segments),
         path = Path.join([dir | segments]),
         {:ok, body} <- File.read(path) do
      {200,
       [
         {"content-type", type},
         {"cache-control", "no-cache"},
         {"x-content-type-options", "nosniff"},
         {"content-security-policy", "default-src 'none'; style-src 'unsafe-inline'"}
       ], body}
    else
      _ -> Json.error(404, "no file /#{Enum.join(segments, "/")}", code: "not_found")
    end
  end

  defp safe?(segments) do
    segments != [] and
      Enum.all?(segments, fn s ->
        s not in ["", ".", ".."] and not String.contains?(s, ["/", "\\", <<0>>])
      end)
  end
end
