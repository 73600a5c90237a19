defmodule DevstralElixir.Jobs.AdminToken do
  @moduledoc """
  The admin token that the job API's POSTs require
  (`authorization: Bearer <token>`).

  It is `ADMIN_TOKEN` when set. Otherwise a random token is generated at start,
  logged once, and written to `DATA_DIR/admin_token` (mode 0600) so that local
  tools such as `mix curriculum.run` can use it; a new one is made at every
  start. Start it with `child_spec/1` before the HTTP server.
  """

  use Agent
  require Logger

  @file_name "admin_token"

  @doc """
  Starts the holder. Options: `:name` (default this module), `:token` (default
  the `ADMIN_TOKEN` environment variable), `:data_dir` (where a generated token
  is written; nil writes nothing; default `DATA_DIR`).
  """
  @spec start_link(keyword()) :: Agent.on_start()
  def start_link(opts \\ []) do
    opts =
      Keyword.validate!(opts,
        name: __MODULE__,
        token: System.get_env("ADMIN_TOKEN"),
        data_dir: DevstralElixir.Config.data_dir()
      )

    Agent.start_link(fn -> init(opts[:token], opts[:data_dir]) end, name: opts[:name])
  end

  @doc "The token, or nil when the holder is not running."
  @spec get(GenServer.server()) :: String.t() | nil
  def get(server \\ __MODULE__) do
    Agent.get(server, & &1)
  catch
    :exit, _not_running -> nil
  end

  @doc "True when `given` is the token (compared in constant time); false when there is none."
  @spec valid?(String.t() | nil, GenServer.server()) :: boolean()
  def valid?(given, server \\ __MODULE__)
  def valid?(nil, _server), do: false

  def valid?(given, server) when is_binary(given) do
    case get(server) do
      nil -> false
      token -> byte_size(given) == byte_size(token) and :crypto.hash_equals(given, token)
    end
  end

  @doc "The file a generated token is written to."
  @spec file(Path.t()) :: Path.t()
  def file(data_dir), do: Path.join(data_dir, @file_name)

  @doc "The token a local tool should send: `ADMIN_TOKEN`, else the file the host wrote."
  @spec for_client(Path.t()) :: String.t() | nil
  def for_client(data_dir) do
    case blank_to_nil(System.get_env("ADMIN_TOKEN")) do
      nil ->
        case File.read(file(data_dir)) do
          {:ok, token} -> blank_to_nil(String.trim(token))
          {:error, _} -> nil
        end

      token ->
        token
    end
  end

  defp init(token, data_dir) do
    case blank_to_nil(token) do
      nil ->
        token = Base.url_encode64(:crypto.strong_rand_bytes(24), padding: false)
        where = write_file(token, data_dir)

        Logger.warning(
          "ADMIN_TOKEN is not set; the admin token for POST /api/jobs is #{token}#{where}"
        )

        token

      token ->
        token
    end
  end

  defp write_file(_token, nil), do: ""

  defp write_file(token, data_dir) do
    path = file(data_dir)
    tmp = "#{path}.tmp#{System.unique_integer([:positive])}"

    with :ok <- File.mkdir_p(data_dir),
         # Empty and private before the secret goes in.
         :ok <- File.write(tmp, ""),
         :ok <- File.chmod(tmp, 0o600),
         :ok <- File.write(tmp, token),
         :ok <- File.rename(tmp, path) do
      " (written to #{path})"
    else
      {:error, reason} ->
        File.rm(tmp)
        " (not written to #{path}: #{:file.format_error(reason)})"
    end
  end

  defp blank_to_nil(nil), do: nil
  defp blank_to_nil(value), do: if(String.trim(value) == "", do: nil, else: value)
end
