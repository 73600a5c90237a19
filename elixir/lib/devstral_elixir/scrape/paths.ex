defmodule DevstralElixir.Scrape.Paths do
  @moduledoc """
  Where scraped data goes by default: `DATA_DIR/raw/SOURCE`, where `DATA_DIR`
  is the environment variable when set and `<repo>/data` otherwise (see
  `DevstralElixir.Config.data_dir/0`).
  """

  alias DevstralElixir.Config

  @doc "The default output directory of a source, e.g. `default_out(\"hex\")`."
  @spec default_out(String.t()) :: Path.t()
  def default_out(source), do: Path.join([Config.data_dir(), "raw", source])
end
