defmodule DevstralElixir.Web.OpenAIModelsTest do
  # A real Python worker serves the tiny model; the router is called directly
  # with the context the web server would give it.
  use ExUnit.Case, async: false

  import DevstralElixir.Test.Eventually

  alias DevstralElixir.{Config, Worker}
  alias DevstralElixir.Web.{Json, Request, Router}

  @model Path.join(Config.root(), "data/models/tiny-elixir")

  setup_all do
    unless File.exists?(Path.join(@model, "config.json")),
      do: flunk("the tiny model is missing at #{@model}; run `make model`")

    spec =
      {Worker,
       name: nil,
       python: Path.join(Config.root(), ".venv/bin/python"),
       cd: Config.root(),
       args: ["--no-grpc"],
       env: %{"MODEL" => @model}}

    {:ok, sup} = Supervisor.start_link([spec], strategy: :one_for_one)
    [{_, worker, _, _}] = Supervisor.which_children(sup)
    eventually(fn -> Worker.info(worker).status == :ready end, 60_000)
    on_exit(fn -> Process.exit(sup, :shutdown) end)
    %{worker: worker}
  end

  defp context(worker, served) do
    %{
      worker: worker,
      api_token: nil,
      max_body_bytes: 1_048_576,
      model: @model,
      served_model_name: served
    }
  end

  defp get(path, context) do
    {status, _headers, body} = Router.route(%Request{method: "GET", path: path}, context)
    {status, body |> Json.decode() |> elem(1)}
  end

  defp complete(model, context) do
    body = Json.encode(%{"prompt" => "defmodule A do", "max_tokens" => 2, "model" => model})
    request = %Request{method: "POST", path: ["v1", "completions"], body: body}
    {status, _headers, answer} = Router.route(request, context)
    {status, answer |> Json.decode() |> elem(1)}
  end

  test "/v1/models lists the served name, not the path", %{worker: worker} do
    context = context(worker, Config.default_served_name(@model))
    assert {200, %{"data" => models}} = get(["v1", "models"], context)
    assert Enum.map(models, & &1["id"]) == ["tiny-elixir", "tiny-elixir+rag"]
    assert {200, %{"id" => "tiny-elixir"}} = get(["v1", "models", "tiny-elixir"], context)
    assert {200, %{"id" => "tiny-elixir+rag"}} = get(["v1", "models", "tiny-elixir+rag"], context)
    path_parts = @model |> String.split("/", trim: true)
    assert {200, %{"id" => "tiny-elixir"}} = get(["v1", "models" | path_parts], context)
  end

  test "requests accept the served name and the path; answers carry the name", %{worker: worker} do
    context = context(worker, "my-coder")

    assert {200, %{"data" => [%{"id" => "my-coder"}, %{"id" => "my-coder+rag"}]}} =
             get(["v1", "models"], context)

    assert {200, %{"model" => "my-coder"}} = complete("my-coder", context)
    assert {200, %{"model" => "my-coder"}} = complete(@model, context)

    # The directory name is not the served name any more: unknown, and the
    # 404 lists what is served.
    assert {404, %{"error" => error}} = complete("tiny-elixir", context)
    assert error["code"] == "model_not_found"
    assert error["message"] =~ ~s("my-coder")
    assert error["message"] =~ @model

    # An unknown model's +rag twin is just as unknown.
    assert {404, %{"error" => rag_error}} = complete("tiny-elixir+rag", context)
    assert rag_error["code"] == "model_not_found"
    assert rag_error["message"] =~ ~s(the model "tiny-elixir+rag" does not exist)
    assert rag_error["message"] =~ ~s("my-coder+rag")
    assert {404, _} = get(["v1", "models", "tiny-elixir+rag"], context)
  end
end
