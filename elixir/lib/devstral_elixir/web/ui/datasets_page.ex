defmodule DevstralElixir.Web.UI.DatasetsPage do
  @moduledoc """
  `/datasets`: each built dataset under `DATA_DIR` (a directory up to three
  levels down holding a `manifest.json`), with its manifest and its
  `REPORT.md`. The report's Markdown is sent as escaped text and rendered in
  the browser by markdown-it with raw HTML off; its charts (relative image
  links) are served by `GET /datasets/files/NAME/PATH` (SVG and PNG only).
  """

  alias DevstralElixir.Config
  alias DevstralElixir.Web.{Request, Static}
  alias DevstralElixir.Web.UI.{Response, Views}

  @max_manifest_bytes 64 * 1024

  @doc "The datasets page."
  @spec index(Request.t(), map()) :: Request.response()
  def index(_request, %{ui: ui}) do
    data_dir = Config.data_dir()

    datasets =
      for {name, dir} <- datasets(data_dir) do
        %{
          key: name,
          name: Path.relative_to(dir, data_dir),
          manifest: manifest(dir),
          report: read(Path.join(dir, "REPORT.md"))
        }
      end

    content = Views.datasets(%{datasets: datasets, data_dir: data_dir})
    Response.html(200, Views.page(:datasets, "Datasets", content, ui), ui)
  end

  @doc "A chart of a dataset's report; `name` is the dataset's name with `~` for `/`."
  @spec file(String.t(), [String.t()], Request.t(), map()) :: Request.response()
  def file(name, segments, request, %{ui: ui}) do
    case List.keyfind(datasets(Config.data_dir()), name, 0) do
      {_name, dir} -> Static.file(dir, segments)
      nil -> Response.error(404, "no dataset #{name}", request, ui)
    end
  end

  @doc """
  The built datasets under `data_dir` as `{key, dir}`; a key is the path
  under `data_dir` with `~` for `/` (one URL segment).
  """
  @spec datasets(Path.t()) :: [{String.t(), Path.t()}]
  def datasets(data_dir) do
    ["*/manifest.json", "*/*/manifest.json", "*/*/*/manifest.json"]
    |> Enum.flat_map(&Path.wildcard(Path.join(data_dir, &1)))
    |> Enum.map(&Path.dirname/1)
    |> Enum.reject(&String.contains?(&1, ["/mnesia/", "/models/", "/adapters/"]))
    |> Enum.map(&{Path.relative_to(&1, data_dir) |> String.replace("/", "~"), &1})
    |> Enum.sort()
  end

  defp manifest(dir) do
    case File.read(Path.join(dir, "manifest.json")) do
      {:ok, text} when byte_size(text) > @max_manifest_bytes ->
        binary_part(text, 0, @max_manifest_bytes) <> "\n… (cut at #{@max_manifest_bytes} bytes)"

      {:ok, text} ->
        text

      {:error, reason} ->
        "unreadable: #{:file.format_error(reason)}"
    end
  end

  defp read(path) do
    case File.read(path) do
      {:ok, text} -> text
      {:error, _} -> nil
    end
  end
end
