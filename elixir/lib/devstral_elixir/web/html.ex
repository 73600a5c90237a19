defmodule DevstralElixir.Web.HTML do
  @moduledoc """
  HTML escaping for the web UI, and an EEx engine that escapes by default.

  Templates compiled with `DevstralElixir.Web.HTML.Engine` escape every
  `<%= ... %>` value, so text a user or the model wrote can only ever show as
  text. A value already made of HTML (another rendered fragment) is passed as
  `{:safe, iodata}` (see `safe/1`) and goes in as it is.
  """

  @type safe :: {:safe, iodata()}

  @doc "Escapes `&`, `<`, `>`, `\"` and `'` in a value's text form."
  @spec escape(term()) :: String.t()
  def escape(nil), do: ""
  def escape(value) when is_binary(value), do: escape_binary(value)
  def escape(value) when is_atom(value), do: value |> Atom.to_string() |> escape_binary()
  def escape(value) when is_integer(value), do: Integer.to_string(value)
  def escape(value) when is_float(value), do: Float.to_string(value)
  def escape(value), do: value |> to_string() |> escape_binary()

  @doc "Marks rendered HTML as safe to insert unescaped."
  @spec safe(iodata()) :: safe()
  def safe(iodata), do: {:safe, iodata}

  @doc """
  The text a template puts for a value: safe HTML as is, a list element by
  element, anything else escaped.
  """
  @spec to_html(term()) :: iodata()
  def to_html({:safe, iodata}), do: iodata
  def to_html(list) when is_list(list), do: Enum.map(list, &to_html/1)
  def to_html(value), do: escape(value)

  defp escape_binary(text) do
    String.replace(text, ["&", "<", ">", "\"", "'"], fn
      "&" -> "&amp;"
      "<" -> "&lt;"
      ">" -> "&gt;"
      "\"" -> "&quot;"
      "'" -> "&#39;"
    end)
  end

  defmodule Engine do
    @moduledoc """
    EEx's own engine (with `@name` for `assigns.name`), except that `<%= expr %>` escapes `expr` unless it is
    `{:safe, iodata}`. Use with `EEx.function_from_file(..., engine: Engine)`.
    """
    @behaviour EEx.Engine

    @impl true
    defdelegate init(opts), to: EEx.Engine
    @impl true
    defdelegate handle_body(state), to: EEx.Engine
    @impl true
    defdelegate handle_text(state, meta, text), to: EEx.Engine
    @impl true
    defdelegate handle_begin(state), to: EEx.Engine
    # A `do` block's body is template HTML: it is safe, so
    # `<%= for x <- xs do %>...<% end %>` is not escaped a second time.
    @impl true
    def handle_end(state), do: quote(do: {:safe, unquote(EEx.Engine.handle_end(state))})

    # `@name` reads `assigns.name`, as in EEx's SmartEngine.
    @impl true
    def handle_expr(state, "=", expr) do
      expr = Macro.prewalk(expr, &EEx.Engine.handle_assign/1)
      escaped = quote do: IO.iodata_to_binary(DevstralElixir.Web.HTML.to_html(unquote(expr)))
      EEx.Engine.handle_expr(state, "=", escaped)
    end

    def handle_expr(state, marker, expr),
      do: EEx.Engine.handle_expr(state, marker, Macro.prewalk(expr, &EEx.Engine.handle_assign/1))
  end
end
