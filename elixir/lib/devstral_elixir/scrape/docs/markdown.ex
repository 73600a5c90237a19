defmodule DevstralElixir.Scrape.Docs.Markdown do
  @moduledoc """
  Renders a module's documentation chunk (`{:docs_v1, ...}` from
  `Code.fetch_docs/1`) as one Markdown page: the module doc, then the
  documented functions, macros, callbacks and types with their signatures.
  Markdown docs (Elixir) are kept as written; `application/erlang+html`
  docs (OTP) are converted to Markdown. Hidden modules and entries are left
  out.
  """

  @kinds [
    function: "Functions",
    macro: "Macros",
    callback: "Callbacks",
    macrocallback: "Macro callbacks",
    type: "Types"
  ]

  @doc "The Markdown page of `module`, or `nil` when it is hidden or documents nothing."
  @spec render(module(), tuple()) :: String.t() | nil
  def render(_module, {:docs_v1, _anno, _language, _format, :hidden, _metadata, _docs}), do: nil

  def render(module, {:docs_v1, _anno, _language, format, moduledoc, _metadata, docs}) do
    intro = text(moduledoc, format)

    sections =
      for {kind, title} <- @kinds,
          entries = entries(docs, kind, format),
          entries != [] do
        "## #{title}\n\n" <> Enum.join(entries, "\n")
      end

    if intro == "" and sections == [] do
      nil
    else
      [
        "# #{title(module)}\n\n",
        if(intro != "", do: intro <> "\n\n", else: ""),
        Enum.join(sections, "\n")
      ]
      |> IO.iodata_to_binary()
      |> String.trim_trailing()
      |> Kernel.<>("\n")
    end
  end

  def render(_module, _other), do: nil

  @doc "The display name of a module: `Enum` for Elixir modules, `lists` for Erlang ones."
  @spec title(module()) :: String.t()
  def title(module) do
    case Atom.to_string(module) do
      "Elixir." <> name -> name
      name -> name
    end
  end

  defp entries(docs, kind, format) do
    docs
    |> Enum.filter(&match?({{^kind, _, _}, _, _, _, _}, &1))
    |> Enum.sort_by(fn {{_, name, arity}, _, _, _, _} -> {Atom.to_string(name), arity} end)
    |> Enum.flat_map(fn {{_, name, arity}, _anno, signature, doc, metadata} ->
      case text(doc, format) do
        "" ->
          []

        body ->
          signatures =
            if signature == [],
              do: "",
              else: "```\n" <> Enum.join(signature, "\n") <> "\n```\n\n"

          deprecated =
            case metadata do
              %{deprecated: why} -> "> Deprecated: #{why}\n\n"
              _ -> ""
            end

          ["### #{name}/#{arity}\n\n" <> signatures <> deprecated <> body <> "\n"]
      end
    end)
  end

  defp text(%{"en" => doc}, "text/markdown") when is_binary(doc), do: String.trim(doc)
  defp text(%{"en" => doc}, "application/erlang+html"), do: doc |> html() |> tidy()
  defp text(%{"en" => doc}, _format) when is_binary(doc), do: String.trim(doc)
  defp text(_none_or_hidden, _format), do: ""

  @doc "Converts `application/erlang+html` content (a list of `{tag, attrs, content}` and binaries) to Markdown."
  @spec html(term()) :: String.t()
  def html(content) when is_list(content), do: Enum.map_join(content, &element/1)
  def html(content) when is_binary(content), do: content
  def html(_), do: ""

  defp element(text) when is_binary(text), do: text
  defp element({:p, _, content}), do: "\n\n" <> String.trim(html(content)) <> "\n\n"
  defp element({:br, _, _}), do: "\n"

  defp element({heading, _, content}) when heading in [:h1, :h2, :h3, :h4, :h5, :h6],
    do: "\n\n#### " <> String.trim(html(content)) <> "\n\n"

  defp element({:pre, _, content}),
    do: "\n\n```\n" <> String.trim_trailing(plain(content)) <> "\n```\n\n"

  defp element({:code, _, content}), do: "`" <> plain(content) <> "`"
  defp element({tag, _, content}) when tag in [:em, :i], do: "*" <> html(content) <> "*"
  defp element({tag, _, content}) when tag in [:strong, :b], do: "**" <> html(content) <> "**"
  defp element({:ul, _, items}), do: "\n\n" <> list(items, fn _ -> "- " end) <> "\n"
  defp element({:ol, _, items}), do: "\n\n" <> list(items, &"#{&1}. ") <> "\n"
  defp element({:dl, _, content}), do: "\n\n" <> html(content) <> "\n"
  defp element({:dt, _, content}), do: "**" <> String.trim(html(content)) <> "**\n"
  defp element({:dd, _, content}), do: ": " <> String.trim(html(content)) <> "\n\n"

  defp element({:div, attrs, content}) do
    case List.keyfind(attrs, :class, 0) do
      {:class, class} ->
        "\n\n> **#{String.capitalize(to_string(class))}:** " <>
          String.trim(html(content)) <> "\n\n"

      nil ->
        "\n\n" <> html(content) <> "\n\n"
    end
  end

  defp element({_tag, _, content}), do: html(content)
  defp element(_), do: ""

  defp list(items, bullet) do
    items
    |> Enum.filter(&match?({:li, _, _}, &1))
    |> Enum.with_index(1)
    |> Enum.map_join(fn {{:li, _, content}, n} ->
      bullet.(n) <> String.trim(tidy(html(content))) <> "\n"
    end)
  end

  defp plain(content) when is_list(content), do: Enum.map_join(content, &plain/1)
  defp plain(text) when is_binary(text), do: text
  defp plain({_tag, _, content}), do: plain(content)
  defp plain(_), do: ""

  defp tidy(markdown), do: markdown |> String.replace(~r/\n{3,}/, "\n\n") |> String.trim()
end
