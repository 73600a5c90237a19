defmodule DevstralElixir.Web.Server do
  @moduledoc """
  Runs Debian's yaws embedded in this VM, with `DevstralElixir.Web.Appmod`
  mounted at `/`.

  yaws keeps one global configuration per VM, so one HTTP server runs per node.
  The route context (which worker to call, the API token) travels to every
  request in the server's `opaque` field.
  """
  use GenServer
  require Logger

  @options [
    host: {127, 0, 0, 1},
    port: 4000,
    worker: DevstralElixir.Worker,
    api_token: nil,
    model: nil,
    served_model_name: nil,
    rag: nil,
    log_dir: nil,
    max_body_bytes: 8 * 1024 * 1024
  ]

  # Public API

  @doc """
  Starts yaws. Options: `:host` (an IP tuple), `:port` (0 picks a free one),
  `:worker` (the `DevstralElixir.Worker` server to call), `:api_token` (bearer
  token for `/v1/*`, or nil), `:model` and `:served_model_name` (the configured
  model and the id the OpenAI API gives it; other models loaded into the worker
  are served under `DevstralElixir.Config.default_served_name/1`), `:rag`
  (the RAG settings, `DevstralElixir.Config`'s `rag`; nil: `+rag` models use
  the worker's defaults and nothing is remembered), `:log_dir`,
  `:max_body_bytes`.
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) do
    opts = Keyword.validate!(opts, @options)
    GenServer.start_link(__MODULE__, opts, name: __MODULE__)
  end

  @doc "The TCP port yaws listens on (useful with `port: 0`)."
  @spec port() :: :inet.port_number()
  def port, do: GenServer.call(__MODULE__, :port)

  # Callbacks

  @impl true
  def init(opts) do
    log_dir = opts[:log_dir] || Path.join(System.tmp_dir!(), "devstral-yaws-logs")
    File.mkdir_p!(log_dir)
    port = if opts[:port] == 0, do: free_port(opts[:host]), else: opts[:port]

    context = %{
      worker: opts[:worker],
      api_token: opts[:api_token],
      model: opts[:model],
      served_model_name: opts[:served_model_name],
      rag: opts[:rag],
      max_body_bytes: opts[:max_body_bytes]
    }

    Application.load(:yaws)
    Application.put_env(:yaws, :embedded, true)
    {:ok, _} = Application.ensure_all_started(:yaws)

    id = 'devstral_elixir'

    gconf = [
      id: id,
      logdir: to_charlist(log_dir),
      ebin_dir: [],
      include_dir: [],
      # Bounded by the yaws defaults otherwise; model calls can be long.
      keepalive_timeout: 60_000
    ]

    sconf = [
      port: port,
      servername: 'devstral_elixir',
      listen: opts[:host],
      docroot: to_charlist(log_dir),
      appmods: [{'/', DevstralElixir.Web.Appmod}],
      partial_post_size: :nolimit,
      opaque: [{:context, context}]
    ]

    {:ok, sconf_list, gconf_rec, child_specs} =
      :yaws_api.embedded_start_conf(to_charlist(log_dir), [sconf], gconf, id)

    # Some of these (the trace and log servers) may already run under yaws_sup.
    for spec <- child_specs do
      case Supervisor.start_child(:yaws_sup, spec) do
        {:ok, _} -> :ok
        {:error, {:already_started, _}} -> :ok
      end
    end

    :ok = :yaws_api.setconf(gconf_rec, sconf_list)
    Logger.info("HTTP listening on http://#{:inet.ntoa(opts[:host])}:#{port}")
    {:ok, %{port: port}}
  end

  @impl true
  def handle_call(:port, _from, state), do: {:reply, state.port, state}

  @impl true
  def terminate(_reason, _state) do
    Application.stop(:yaws)
    :ok
  end

  # yaws takes a fixed port, so port 0 is resolved by asking the OS for a free one.
  defp free_port(host) do
    {:ok, socket} = :gen_tcp.listen(0, ip: host, reuseaddr: true)
    {:ok, port} = :inet.port(socket)
    :gen_tcp.close(socket)
    port
  end
end
