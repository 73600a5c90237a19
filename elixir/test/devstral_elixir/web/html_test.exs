defmodule DevstralElixir.Web.HTMLTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Web.HTML
  require EEx

  EEx.function_from_string(
    :def,
    :sample,
    ~s|<p title="<%= @title %>"><%= @body %></p><%= for x <- @items do %><i><%= x %></i><% end %><%= @raw %>|,
    [:assigns],
    engine: HTML.Engine
  )

  test "escape/1 escapes the five characters that matter in HTML" do
    assert HTML.escape(~s|<img src=x onerror="a('b')"> & co|) ==
             "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt; &amp; co"

    assert HTML.escape(nil) == ""
    assert HTML.escape(42) == "42"
  end

  test "the engine escapes every value, but not its own blocks nor {:safe, html}" do
    html =
      sample(%{
        title: ~s(" onmouseover="x),
        body: "<script>alert(1)</script>",
        items: ["<b>", "ok"],
        raw: HTML.safe("<hr>")
      })

    assert html ==
             ~s|<p title="&quot; onmouseover=&quot;x">&lt;script&gt;alert(1)&lt;/script&gt;</p>| <>
               "<i>&lt;b&gt;</i><i>ok</i><hr>"
  end
end
