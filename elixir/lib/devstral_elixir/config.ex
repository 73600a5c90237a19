defmodule DevstralElixir.Config do
  @moduledoc """
  Runtime configuration, read from environment variables at start.

  | variable | default | meaning |
  | --- | --- | --- |
  | `MODEL` | `<repo>/models/tiny-code` | model the worker loads: a local directory or a hub id |
  | `HTTP_HOST` | `127.0.0.1` | address the HTTP server binds |
  | `HTTP_PORT` | `4000` | HTTP port |
  | `GRPC_PORT` | `50051` | the worker's gRPC port (`0` picks a free one) |
  | `WORKER_GRPC` | `true` | whether the worker also serves gRPC |
  | `DATA_DIR` | `<repo>/data` | models, corpora, datasets, adapters, Mnesia |
  | `API_TOKEN` | unset | bearer token for `/v1/*`; required when `HTTP_HOST` is not loopback |
  | `WORKER_PYTHON` | `<repo>/.venv/bin/python` | the Python interpreter that runs the worker |
  | `SERVED_MODEL_NAME` | `MODEL`'s directory name (`tiny-code`), or the hub id | the model id `/v1/models` lists; requests may name the model by it or by `MODEL` |
  | `RAG_REMEMBER` | `true` | whether finished chat completions are stored in the `conversations` memory |
  | `RAG_TOP_K` | `5` | memory hits a `+rag` model puts into the prompt (1..100) |
  | `RAG_MIN_SCORE` | `0.3` | the least cosine score of a hit a `+rag` model uses (-1..1) |
  | `RAG_COLLECTION` | `conversations` | the memory collection `+rag` models search |

  An invalid value raises `DevstralElixir.Config.Error` naming the variable, so
  the host fails at start instead of misbehaving later.
  """

  defmodule Error do
    @moduledoc "An invalid configuration value; the message names the variable."
    defexception [:message]
  end

  @enforce_keys [:root, :data_dir, :model, :http_host, :http_port, :grpc_port]
  defstruct [
    :root,
    :data_dir,
    :model,
    :http_host,
    :http_port,
    :grpc_port,
    :api_token,
    :python,
    :served_model_name,
    worker_grpc: true,
    rag: %{remember: true, top_k: 5, min_score: 0.3, collection: "conversations"}
  ]

  @type t :: %__MODULE__{
          root: Path.t(),
          data_dir: Path.t(),
          model: String.t(),
          http_host: :inet.ip_address(),
          http_port: :inet.port_number(),
          grpc_port: :inet.port_number(),
          api_token: String.t() | nil,
          python: Path.t(),
          served_model_name: String.t(),
          worker_grpc: boolean(),
          rag: rag()
        }

  @typedoc "The RAG memory settings (`RAG_*`): automatic memory and what `+rag` models retrieve."
  @type rag :: %{
          remember: boolean(),
          top_k: pos_integer(),
          min_score: float(),
          collection: String.t()
        }

  # The repository root: this file lives in <root>/elixir/lib/devstral_elixir/.
  @root Path.expand("../../..", __DIR__)

  @doc "The repository root (overridable with `DEVSTRAL_ROOT`)."
  @spec root() :: Path.t()
  def root, do: System.get_env("DEVSTRAL_ROOT") || @root

  @doc "The data directory (`DATA_DIR`, default `<repo>/data`), as an absolute path."
  @spec data_dir() :: Path.t()
  def data_dir, do: Path.expand(System.get_env("DATA_DIR") || Path.join(root(), "data"))

  @doc """
  Reads and validates the whole configuration from `env` (default: the process
  environment). Raises `DevstralElixir.Config.Error` on an invalid value.
  """
  @spec load(%{optional(String.t()) => String.t()}) :: t()
  def load(env \\ System.get_env()) do
    root = Map.get(env, "DEVSTRAL_ROOT", @root)
    data_dir = Path.expand(non_empty(env, "DATA_DIR") || Path.join(root, "data"))
    http_host = ip(env, "HTTP_HOST", "127.0.0.1")
    api_token = non_empty(env, "API_TOKEN")

    if not loopback?(http_host) and api_token == nil do
      raise Error,
            "HTTP_HOST=#{env["HTTP_HOST"]} is not a loopback address, so API_TOKEN must be set: " <>
              "a server reachable from other machines needs a token"
    end

    model = model(env, root)

    %__MODULE__{
      root: root,
      data_dir: data_dir,
      model: model,
      served_model_name: non_empty(env, "SERVED_MODEL_NAME") || default_served_name(model),
      http_host: http_host,
      http_port: port(env, "HTTP_PORT", 4000),
      grpc_port: port(env, "GRPC_PORT", 50051),
      worker_grpc: boolean(env, "WORKER_GRPC", true),
      api_token: api_token,
      python: non_empty(env, "WORKER_PYTHON") || Path.join(root, ".venv/bin/python"),
      rag: %{
        remember: boolean(env, "RAG_REMEMBER", true),
        top_k: integer(env, "RAG_TOP_K", 5, 1..100),
        min_score: float(env, "RAG_MIN_SCORE", 0.3, -1.0, 1.0),
        collection: collection(env, "RAG_COLLECTION", "conversations")
      }
    }
  end

  @doc """
  The name a model is served under when `SERVED_MODEL_NAME` does not say, as
  vLLM's `--served-model-name` defaults: a checkpoint directory's own name
  (`/models/tiny-elixir` is `tiny-elixir`), a hub id as it is.
  """
  @spec default_served_name(String.t()) :: String.t()
  def default_served_name(model) do
    if path?(model), do: model |> Path.expand() |> Path.basename(), else: model
  end

  @doc "True for 127.0.0.0/8 and ::1."
  @spec loopback?(:inet.ip_address()) :: boolean()
  def loopback?({127, _, _, _}), do: true
  def loopback?({0, 0, 0, 0, 0, 0, 0, 1}), do: true
  def loopback?(_), do: false

  defp non_empty(env, name) do
    case Map.get(env, name) do
      nil -> nil
      value -> if String.trim(value) == "", do: nil, else: value
    end
  end

  # A hub id ("Qwen/Qwen2.5-Coder-1.5B") is passed through to the worker; a value
  # that looks like a path must name an existing directory. The default is the
  # tiny code base shipped in the repository (models/tiny-code, pretrained by
  # scripts/pretrain_tiny_model.py), whatever DATA_DIR is: it is part of the
  # project, not user data.
  defp model(env, root) do
    case non_empty(env, "MODEL") do
      nil ->
        Path.join(root, "models/tiny-code")

      value ->
        if path?(value) and not File.dir?(Path.expand(value)) do
          raise Error, "MODEL=#{value} looks like a path but no such directory exists"
        end

        value
    end
  end

  defp path?(model), do: String.starts_with?(model, ["/", ".", "~"])

  defp port(env, name, default) do
    case non_empty(env, name) do
      nil ->
        default

      value ->
        case Integer.parse(value) do
          {n, ""} when n in 0..65_535 -> n
          _ -> raise Error, "#{name} must be an integer from 0 to 65535, got #{inspect(value)}"
        end
    end
  end

  defp integer(env, name, default, range) do
    case non_empty(env, name) do
      nil ->
        default

      value ->
        case Integer.parse(value) do
          {n, ""} when n >= range.first and n <= range.last ->
            n

          _ ->
            raise Error,
                  "#{name} must be an integer from #{range.first} to #{range.last}, got #{inspect(value)}"
        end
    end
  end

  defp float(env, name, default, min, max) do
    case non_empty(env, name) do
      nil ->
        default

      value ->
        case Float.parse(value) do
          {x, ""} when x >= min and x <= max ->
            x

          _ ->
            raise Error, "#{name} must be a number from #{min} to #{max}, got #{inspect(value)}"
        end
    end
  end

  # Collection names are checked as the RAG API checks them.
  defp collection(env, name, default) do
    value = non_empty(env, name) || default

    if DevstralElixir.Rag.Memory.collection_name?(value),
      do: value,
      else:
        raise(
          Error,
          "#{name} must be a collection name (letters, digits, _ and -), got #{inspect(value)}"
        )
  end

  defp ip(env, name, default) do
    value = non_empty(env, name) || default

    case :inet.parse_address(String.to_charlist(value)) do
      {:ok, address} -> address
      {:error, _} -> raise Error, "#{name} must be an IP address, got #{inspect(value)}"
    end
  end

  defp boolean(env, name, default) do
    case non_empty(env, name) do
      nil -> default
      value when value in ["1", "true", "yes"] -> true
      value when value in ["0", "false", "no"] -> false
      value -> raise Error, "#{name} must be true or false, got #{inspect(value)}"
    end
  end
end
