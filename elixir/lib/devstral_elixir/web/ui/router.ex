defmodule DevstralElixir.Web.UI.Router do
  @moduledoc """
  The web UI's routes, and the one place their access rules are applied:

  | route | what | who |
  | --- | --- | --- |
  | `GET /` (`?c=ID`) | the assistant | anyone (a login when `API_TOKEN` is set) |
  | `GET /jobs`, `GET /jobs/ID` | jobs, one job (live over SSE) | same |
  | `GET /datasets`, `GET /datasets/files/NAME/PATH` | built datasets, their charts | same |
  | `GET /adapters` | the adapter registry | same |
  | `GET /ui/events/jobs`, `GET /ui/events/jobs/ID` | the SSE feeds | same |
  | `/ui/conversations...` | this browser's conversations (JSON or forms) | same |
  | `POST /ui/jobs`, `/ui/jobs/ID/cancel`, `/ui/jobs/ID/retry` | start, cancel, retry | admin |
  | `POST /ui/adapters/activate`, `/ui/adapters/rollback` | blue-green switch | admin |
  | `GET/POST /login`, `POST /logout` | the session | anyone |
  | `GET /static/...` | CSS, JS, the npm libraries | anyone |

  Every POST must carry the browser's CSRF token (`DevstralElixir.Web.UI.Auth`),
  checked before anything else; admin routes then need an admin session.
  """

  alias DevstralElixir.Web.{Request, Static}

  alias DevstralElixir.Web.UI.{
    AdaptersPage,
    Auth,
    ChatPage,
    DatasetsPage,
    JobsPage,
    JobStreams,
    LoginPage,
    Response
  }

  @doc "True for the paths this router serves."
  @spec handles?([String.t()]) :: boolean()
  def handles?([]), do: true
  def handles?([first | _]), do: first in ~w(jobs datasets adapters login logout ui static)

  @doc "Routes a UI request (see the module doc)."
  @spec route(Request.t(), map()) :: term()
  def route(%Request{path: ["static" | rest], method: "GET"}, _context), do: Static.serve(rest)

  def route(%Request{} = request, context) do
    ui = Auth.identify(request)

    with {:ok, params} <- params(request, ui),
         :ok <- csrf(request, ui, params),
         :ok <- login_required(request, ui, context) do
      dispatch(request.method, request.path, request, %{ui: ui, params: params, context: context})
    end
  end

  defp params(%Request{method: "GET"} = request, _ui), do: {:ok, request.query}

  defp params(request, ui) do
    case Auth.params(request) do
      {:ok, params} -> {:ok, params}
      {:error, message} -> Response.error(400, message, request, ui)
    end
  end

  defp csrf(%Request{method: method}, _ui, _params) when method in ["GET", "HEAD"], do: :ok

  defp csrf(request, ui, params) do
    if Auth.csrf_ok?(request, ui, params),
      do: :ok,
      else: Response.error(403, "missing or wrong CSRF token; reload the page", request, ui)
  end

  defp login_required(%Request{path: [first | _]}, _ui, _context)
       when first in ["login", "logout"],
       do: :ok

  defp login_required(_request, %Auth{role: role}, _context) when role != nil, do: :ok
  defp login_required(_request, _ui, %{api_token: nil}), do: :ok

  defp login_required(%Request{method: "GET", path: path}, ui, _context)
       when path == [] or hd(path) != "ui" do
    next = "/" <> Enum.join(path, "/")
    Response.redirect("/login?" <> URI.encode_query(%{"next" => next}), ui)
  end

  defp login_required(request, ui, _context),
    do: Response.error(401, "log in first: this server needs a token", request, ui)

  defp dispatch("GET", [], request, env), do: ChatPage.show(request, env)

  defp dispatch(_, ["ui", "conversations" | rest], request, env),
    do: ChatPage.api(request.method, rest, request, env)

  defp dispatch("GET", ["login"], request, env), do: LoginPage.show(request, env)
  defp dispatch("POST", ["login"], request, env), do: LoginPage.login(request, env)
  defp dispatch("POST", ["logout"], request, env), do: LoginPage.logout(request, env)
  defp dispatch("GET", ["jobs"], request, env), do: JobsPage.index(request, env)
  defp dispatch("GET", ["jobs", id], request, env), do: JobsPage.show(id, request, env)
  defp dispatch("GET", ["ui", "events", "jobs"], _request, env), do: JobStreams.all(env)
  defp dispatch("GET", ["ui", "events", "jobs", id], _request, env), do: JobStreams.one(id, env)

  defp dispatch("POST", ["ui", "jobs" | rest], request, env),
    do: admin(request, env, &JobsPage.act(rest, &1, &2))

  defp dispatch("GET", ["datasets"], request, env), do: DatasetsPage.index(request, env)

  defp dispatch("GET", ["datasets", "files", name | file], request, env),
    do: DatasetsPage.file(name, file, request, env)

  defp dispatch("GET", ["adapters"], request, env), do: AdaptersPage.index(request, env)

  defp dispatch("POST", ["ui", "adapters", action], request, env),
    do: admin(request, env, &AdaptersPage.act(action, &1, &2))

  defp dispatch(method, path, request, env) do
    Response.error(404, "no page for #{method} /#{Enum.join(path, "/")}", request, env.ui)
  end

  defp admin(request, %{ui: %Auth{role: :admin}} = env, fun), do: fun.(request, env)

  defp admin(request, env, _fun),
    do: Response.error(401, "this needs an admin login (the admin token)", request, env.ui)
end
