defmodule DevstralElixir.Web.UI.Views do
  @moduledoc """
  The web UI's HTML: the EEx templates under `templates/`, compiled with the
  escaping engine (`DevstralElixir.Web.HTML.Engine`), and the small helpers
  they call. Each template function takes an assigns map and returns HTML as
  a binary; `page/3` wraps a page's content in the layout.
  """

  import DevstralElixir.Web.HTML, only: [safe: 1]
  require EEx

  alias DevstralElixir.Web.HTML

  @templates Path.expand("templates", __DIR__)

  for name <- ~w(layout login chat jobs job_rows actions job job_summary datasets adapters) do
    file = Path.join(@templates, name <> ".html.eex")
    @external_resource file
    @doc false
    EEx.function_from_file(:def, String.to_atom(name), file, [:assigns], engine: HTML.Engine)
  end

  @doc "A whole page: `content` (HTML) inside the layout, with the navigation for `page`."
  @spec page(atom(), String.t(), String.t(), map()) :: String.t()
  def page(page, title, content, ui) do
    layout(%{page: page, title: title, content: safe(content), ui: ui})
  end

  @doc false
  def current(page, page), do: safe(~s(aria-current="page"))
  def current(_page, _other), do: ""

  @doc false
  def sources(sources) when is_list(sources) and sources != [] do
    items = for s <- sources, do: ["<li>", HTML.escape(source_label(s)), "</li>"]
    safe([~s(<ul class="sources" data-testid="sources" aria-label="Sources">), items, "</ul>"])
  end

  def sources(_none), do: ""

  @doc "The text a retrieval source is shown as (the same rule as app.js)."
  @spec source_label(term()) :: String.t()
  def source_label(source) when is_binary(source), do: source

  def source_label(%{} = source) do
    label =
      Enum.find_value(~w(title path source uri id), &source[&1]) ||
        DevstralElixir.Web.Json.encode(source)

    label = to_string(label)

    case source["score"] do
      score when is_number(score) -> "#{label} (#{Float.round(score / 1, 3)})"
      _ -> label
    end
  end

  def source_label(other), do: inspect(other)

  @doc false
  def actions(job, csrf), do: safe(actions(%{job: job, csrf: csrf}))

  @doc false
  def blank(value, fallback) when value in [nil, ""], do: fallback
  def blank(value, _fallback), do: value

  @doc false
  def metrics(metrics) when is_map(metrics) and map_size(metrics) > 0 do
    items =
      for {key, value} <- Enum.sort(metrics), not is_map(value) and not is_list(value) do
        ["<dt>", HTML.escape(key), "</dt><dd>", HTML.escape(number(value)), "</dd>"]
      end

    safe([~s(<dl class="metrics">), items, "</dl>"])
  end

  def metrics(_none), do: "none"

  @doc "pass@1 from an adapter's metrics, when an evaluation put it there."
  @spec pass_at_1(map() | nil) :: String.t()
  def pass_at_1(metrics) when is_map(metrics) do
    found =
      Enum.find_value(["pass@1", "pass_at_1"], fn key ->
        metrics[key] || get_in(metrics, ["eval", key]) || get_in(metrics, ["evaluation", key])
      end)

    if is_number(found), do: number(found), else: "not evaluated"
  end

  def pass_at_1(_none), do: "not evaluated"

  @doc false
  def gate(%{"gate_passed" => true}), do: safe(~s(<span class="ok">passed</span>))
  def gate(%{"gate" => gate}) when is_map(gate), do: safe(~s(<span class="bad">failed</span>))
  def gate(_adapter), do: "no verdict"

  @doc false
  def smoke(%{} = smoke) do
    verdict = "#{smoke["parsed"]}/#{smoke["prompts"]} parsed"
    note = if smoke["note"] in [nil, ""], do: "", else: " · " <> smoke["note"]
    verdict <> note
  end

  def smoke(_none), do: "not run"

  @doc false
  def status(adapter) do
    cond do
      adapter["active"] -> "active"
      adapter["previous"] -> "previous"
      adapter["loaded"] -> "loaded"
      adapter["promoted"] -> "promoted"
      true -> "on disk"
    end
  end

  defp number(value) when is_float(value), do: :erlang.float_to_binary(value, decimals: 4)
  defp number(value), do: to_string(value)
end
