defmodule DevstralElixir.Web.UI.JobsPage do
  @moduledoc """
  `/jobs` (every job, live), `/jobs/ID` (one job with its live log and loss
  chart), and the admin actions: start a job of any registered type
  (`DevstralElixir.Application.job_runners/0`), cancel, and retry (a
  finished job is enqueued again as a new job with the same type, args,
  priority and attempts).
  """

  alias DevstralElixir.Jobs.{Job, Queue}
  alias DevstralElixir.Web.{Json, Request}
  alias DevstralElixir.Web.UI.{JobHistory, JobView, Response, Views}

  @examples %{
    "scrape" => ~s({"source": "hex", "limit": 20}),
    "build_dataset" => ~s({"inputs": ["DATA_DIR/raw/hex"], "out": "DATA_DIR/datasets/main"}),
    "curriculum" => ~s({"dataset_dir": "DATA_DIR/datasets/main", "max_steps": 20}),
    "train_stage" => ~s({"stage": 1, "dataset_dir": "DATA_DIR/datasets/main"}),
    "evaluate" => ~s({})
  }

  @doc "The jobs list."
  @spec index(Request.t(), map()) :: Request.response()
  def index(request, %{ui: ui}) do
    queue_call(request, ui, fn ->
      admin? = ui.role == :admin
      rows = JobView.rows(Queue.list(Queue, limit: 200), admin?, ui.csrf)
      content = Views.jobs(%{ui: ui, rows: {:safe, rows}, job_types: job_types()})
      Response.html(200, Views.page(:jobs, "Jobs", content, ui), ui)
    end)
  end

  @doc "One job's page."
  @spec show(String.t(), Request.t(), map()) :: Request.response()
  def show(id_text, request, %{ui: ui}) do
    queue_call(request, ui, fn ->
      with {:ok, id} <- parse_id(id_text),
           {:ok, job} <- Queue.get(Queue, id) do
        events = history(job)

        content =
          Views.job(%{
            id: id,
            summary: {:safe, JobView.summary(job, ui.role == :admin, ui.csrf)},
            chart: {:safe, JobView.chart(events)},
            log: {:safe, JobView.log(events)}
          })

        Response.html(200, Views.page(:jobs, "Job #{id}", content, ui), ui)
      else
        _ -> Response.error(404, "no job #{id_text}", request, ui)
      end
    end)
  end

  @doc "A job's recorded progress, or its latest progress when none was recorded."
  @spec history(Job.t()) :: [map()]
  def history(%Job{} = job) do
    case JobHistory.events(job.id) do
      [] when is_map(job.progress) -> [JobHistory.entry(job.progress)]
      events -> events
    end
  end

  @doc "The admin actions under `POST /ui/jobs`."
  @spec act([String.t()], Request.t(), map()) :: Request.response()
  def act([], request, %{ui: ui, params: params}) do
    queue_call(request, ui, fn ->
      with {:ok, type} <- field(params, "type"),
           {:ok, args} <- args(params["args"]),
           {:ok, job} <- Queue.enqueue(Queue, type, args, []) do
        done(request, ui, job, 201)
      else
        {:error, message} -> Response.error(400, message, request, ui)
      end
    end)
  end

  def act([id_text, "cancel"], request, %{ui: ui}) do
    queue_call(request, ui, fn ->
      with {:ok, id} <- parse_id(id_text),
           {:ok, job} <- Queue.cancel(Queue, id) do
        done(request, ui, job, 200)
      else
        {:error, {:final, state}} ->
          Response.error(409, "job #{id_text} already #{state}", request, ui)

        _ ->
          Response.error(404, "no job #{id_text}", request, ui)
      end
    end)
  end

  def act([id_text, "retry"], request, %{ui: ui}) do
    queue_call(request, ui, fn ->
      with {:ok, id} <- parse_id(id_text),
           {:ok, job} <- Queue.get(Queue, id),
           true <-
             Job.final?(job) || {:error, "job #{id} is still #{job.state}; cancel it first"},
           {:ok, copy} <-
             Queue.enqueue(Queue, job.type, job.args,
               priority: job.priority,
               max_attempts: job.max_attempts
             ) do
        done(request, ui, copy, 201)
      else
        {:error, message} when is_binary(message) -> Response.error(409, message, request, ui)
        _ -> Response.error(404, "no job #{id_text}", request, ui)
      end
    end)
  end

  def act(path, request, %{ui: ui}),
    do: Response.error(404, "no action /ui/jobs/#{Enum.join(path, "/")}", request, ui)

  defp done(request, ui, job, status) do
    if Request.header(request, "x-csrf-token"),
      do: Response.json(status, Job.to_json(job), ui),
      else: Response.redirect("/jobs/#{job.id}", ui)
  end

  defp job_types do
    DevstralElixir.Application.job_runners()
    |> Map.keys()
    |> Enum.map(&Atom.to_string/1)
    |> Enum.sort()
    |> Enum.map(&{&1, Map.get(@examples, &1, "{}")})
  end

  defp field(params, name) do
    case params[name] do
      value when is_binary(value) and value != "" -> {:ok, value}
      _ -> {:error, "#{name} is required"}
    end
  end

  defp args(nil), do: {:ok, %{}}
  defp args(%{} = args), do: {:ok, args}

  defp args(text) when is_binary(text) do
    case Json.decode(if String.trim(text) == "", do: "{}", else: text) do
      {:ok, %{} = map} -> {:ok, map}
      {:ok, _} -> {:error, "args must be a JSON object"}
      {:error, message} -> {:error, "args: #{message}"}
    end
  end

  defp args(_other), do: {:error, "args must be a JSON object"}

  defp parse_id(text) do
    case Integer.parse(text) do
      {id, ""} when id > 0 -> {:ok, id}
      _ -> :error
    end
  end

  defp queue_call(request, ui, fun) do
    fun.()
  catch
    :exit, _ -> Response.error(503, "the job queue is not running", request, ui)
  end
end
