defmodule DevstralElixir.Scrape.KeepList do
  @moduledoc """
  Which files of a package are kept: Elixir and Erlang source and the
  documentation (`.ex`, `.exs`, `.erl`, `.hrl`, `.md`, `.cheatmd`, `.livemd`),
  `mix.exs` and licence files. Everything under `priv/static`, build and
  dependency directories (`_build`, `deps`, `node_modules`, `.git`) and every
  other file (binaries, assets, JSON, ...) is dropped.
  """

  @extensions ~w(.ex .exs .erl .hrl .md .cheatmd .livemd)
  @skipped_dirs ~w(_build deps node_modules .git .elixir_ls .hex cover)
  @licence ~r/^(licen[cs]e|copying|notice|unlicense|copyright)([._-][^\/]*)?$/i

  @doc "The kept extensions."
  @spec extensions() :: [String.t()]
  def extensions, do: @extensions

  @doc "Whether the relative path `path` (with `/` separators) is kept."
  @spec keep?(String.t()) :: boolean()
  def keep?(path) do
    parts = String.split(path, "/", trim: true)

    cond do
      parts == [] -> false
      Enum.any?(parts, &(&1 in @skipped_dirs)) -> false
      under_priv_static?(parts) -> false
      true -> kept_name?(List.last(parts))
    end
  end

  @doc "Whether a directory named `name` is skipped entirely (build and dependency directories)."
  @spec skipped_dir?(String.t()) :: boolean()
  def skipped_dir?(name), do: name in @skipped_dirs

  defp under_priv_static?(["priv", "static" | _]), do: true
  defp under_priv_static?([_ | rest]), do: under_priv_static?(rest)
  defp under_priv_static?([]), do: false

  defp kept_name?(name) do
    name == "mix.exs" or Regex.match?(@licence, name) or
      String.downcase(Path.extname(name)) in @extensions
  end
end
