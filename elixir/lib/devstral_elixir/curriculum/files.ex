defmodule DevstralElixir.Curriculum.Files do
  @moduledoc """
  Atomic file writes and JSON reads for the curriculum's outputs: a file is
  written to a temporary name beside its target and renamed, so readers never
  see half a file.
  """

  alias DevstralElixir.Jobs.Job
  alias DevstralElixir.Web.Json

  @doc "Writes `content` to `path` atomically (creating the directory)."
  @spec write_atomic(Path.t(), iodata()) :: :ok | {:error, String.t()}
  def write_atomic(path, content) do
    tmp = "#{path}.tmp-#{System.unique_integer([:positive])}"

    with :ok <- File.mkdir_p(Path.dirname(path)),
         :ok <- File.write(tmp, content),
         :ok <- File.rename(tmp, path) do
      :ok
    else
      {:error, reason} ->
        File.rm(tmp)
        {:error, "cannot write #{path}: #{:file.format_error(reason)}"}
    end
  end

  @doc "Writes a term as pretty JSON, atomically (terms JSON cannot hold are inspected)."
  @spec write_json(Path.t(), term()) :: :ok | {:error, String.t()}
  def write_json(path, term) do
    write_atomic(path, [:jiffy.encode(Job.json_safe(term), [:use_nil, :pretty]), ?\n])
  end

  @doc "Reads a JSON object; `:error` when the file is missing or is not a JSON object."
  @spec read_json(Path.t()) :: {:ok, map()} | :error
  def read_json(path) do
    with {:ok, body} <- File.read(path),
         {:ok, map} when is_map(map) <- Json.decode(body) do
      {:ok, map}
    else
      _ -> :error
    end
  end
end
