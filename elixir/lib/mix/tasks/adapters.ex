defmodule Mix.Tasks.Adapters do
  @shortdoc "Lists the trained adapters and which one the running host serves"

  @moduledoc """
  Lists every adapter under `DATA_DIR/adapters` through the running host
  (`GET /api/adapters` on `127.0.0.1:$HTTP_PORT`): its model id, stage, rank,
  gate verdict and whether it is loaded, active (`*`) or the rollback target
  (`<`).

      mix adapters

  `mix adapters.activate ID` and `mix adapters.rollback` change the active
  adapter; `mix adapters.merge ID --out DIR` writes a merged full model. The
  listing and the switches need a running host (`make run`); without one the
  task says so. The helpers here are shared by those tasks.
  """

  use Mix.Task

  alias DevstralElixir.Jobs.{AdminToken, CLI}
  alias DevstralElixir.Web.Json

  @impl true
  def run(argv) do
    CLI.parse_flags!("adapters", argv, [])

    case request!("adapters", :get, "/api/adapters") do
      %{"adapters" => []} ->
        Mix.shell().info(
          "no adapters under #{Path.join(DevstralElixir.Config.data_dir(), "adapters")}"
        )

      %{"adapters" => adapters} = listing ->
        Enum.each(adapters, &Mix.shell().info(line(&1)))

        Mix.shell().info(
          "active: #{name_or_base(listing["active"])}; previous: #{name_or_base(listing["previous"])}"
        )
    end
  end

  defp line(adapter) do
    mark =
      cond do
        adapter["active"] -> "*"
        adapter["previous"] -> "<"
        true -> " "
      end

    gate =
      case adapter["gate_passed"] do
        true -> if(adapter["promoted"], do: "passed, promoted", else: "passed")
        false -> "failed"
        nil -> "not judged"
      end

    "#{mark} #{adapter["id"]}  stage #{adapter["stage"]}  rank #{adapter["rank"]}  gate #{gate}" <>
      if(adapter["loaded"], do: "  loaded", else: "") <> "  #{adapter["created_at"]}"
  end

  @doc "`name`, or a description of the plain base model for `\"\"`."
  @spec name_or_base(String.t() | nil) :: String.t()
  def name_or_base(name) when name in [nil, ""], do: "(base model, no adapter)"
  def name_or_base(name), do: name

  @doc """
  Sends `method path` (with a JSON `body` for POST, and the admin token) to
  the host on `127.0.0.1:$HTTP_PORT` and returns the decoded 2xx answer.
  Raises `Mix.Error` naming the task when no host answers or the host refuses.
  """
  @spec request!(String.t(), :get | :post, String.t(), map() | nil) :: map()
  def request!(task, method, path, body \\ nil) do
    case request(method, path, body) do
      {:ok, answer} -> answer
      {:error, message} -> Mix.raise("mix #{task}: #{message}")
    end
  end

  @doc """
  `request!/4` without raising: `{:ok, answer}` for a 2xx answer, else
  `{:error, message}` saying why (no host up, admin token refused, or the
  host's own error message with the HTTP status).
  """
  @spec request(:get | :post, String.t(), map() | nil) :: {:ok, map()} | {:error, String.t()}
  def request(method, path, body \\ nil) do
    Mix.Task.run("app.config")
    {:ok, _} = Application.ensure_all_started(:inets)
    port = System.get_env("HTTP_PORT", "4000")
    url = String.to_charlist("http://127.0.0.1:#{port}#{path}")
    token = AdminToken.for_client(DevstralElixir.Config.data_dir())

    headers =
      if token, do: [{~c"authorization", String.to_charlist("Bearer " <> token)}], else: []

    request =
      case method do
        :get -> {url, headers}
        :post -> {url, headers, ~c"application/json", Json.encode(body || %{})}
      end

    # Activation loads and smoke-tests the adapter before it answers.
    case :httpc.request(method, request, [timeout: 600_000, connect_timeout: 1_000],
           body_format: :binary
         ) do
      {:ok, {{_, status, _}, _headers, answer}} when status in 200..299 ->
        {:ok, decode(answer)}

      {:ok, {{_, 401, _}, _headers, _answer}} ->
        {:error,
         "the host refused the admin token: set ADMIN_TOKEN to the host's token " <>
           "(it writes a generated one to DATA_DIR/admin_token)"}

      {:ok, {{_, status, _}, _headers, answer}} ->
        message = get_in(decode(answer), ["error", "message"]) || answer

        {:error,
         "#{String.upcase(to_string(method))} #{path} failed with HTTP #{status}: #{message}"}

      {:error, {:failed_connect, _}} ->
        {:error,
         "no host is up on 127.0.0.1:#{port}; start one with `make run` " <>
           "(or set HTTP_PORT to the port it listens on)"}

      {:error, reason} ->
        {:error, "#{inspect(reason)} from 127.0.0.1:#{port}"}
    end
  end

  @doc """
  Activates adapter `id` (`RUN/stageN`, its model id, or `""` for the plain
  base model) on the running host (`POST /api/adapters/activate`). Returns
  the host's answer (`"active"`, `"previous"`, `"smoke_test"`) or why it
  refused.
  """
  @spec activate(String.t()) :: {:ok, map()} | {:error, String.t()}
  def activate(id), do: request(:post, "/api/adapters/activate", %{"adapter" => id})

  @doc """
  Prints an activation's answer (the JSON form of `POST /api/adapters/activate`):
  the smoke test, when one ran, then the active and previous adapters.
  """
  @spec print_activation(map()) :: :ok
  def print_activation(answer) do
    if smoke = answer["smoke_test"] do
      Mix.shell().info(
        "smoke test: #{smoke["prompts"]} generations finished, #{smoke["parsed"]} parsed as Elixir" <>
          if(smoke["require_parse"],
            do: " (required)",
            else: " (not required for this base model)"
          ) <>
          if(smoke["note"] not in [nil, ""], do: "; #{smoke["note"]}", else: "")
      )
    end

    Mix.shell().info(
      "active: #{name_or_base(answer["active"])}; previous: #{name_or_base(answer["previous"])}"
    )
  end

  defp decode(body) do
    case Json.decode(body) do
      {:ok, %{} = map} -> map
      _ -> %{}
    end
  end
end
