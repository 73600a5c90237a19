defmodule DevstralElixir.Scrape.DocsTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Scrape.{Docs, Manifest}
  alias DevstralElixir.Scrape.Docs.Markdown
  alias DevstralElixir.Test.Scrape.Tmp

  @moduletag :capture_log

  test "writes the Markdown docs of an installed Elixir application, with licence and source" do
    out = Path.join(Tmp.dir!(), "out")
    summary = Docs.run(apps: [:eex, "no_such_app"], out: out)

    assert summary.fetched == 1
    assert summary.errors == ["no_such_app is not an installed Elixir or OTP application"]

    assert [row] = Manifest.read_rows(Manifest.path(out))
    vsn = to_string(Application.spec(:eex, :vsn) || System.version())
    assert row["name"] == "eex"
    assert row["version"] == vsn
    assert row["licenses"] == ["Apache-2.0"]
    assert row["origin"] == "elixir"
    assert row["links"]["Source"] =~ "github.com/elixir-lang/elixir/tree/v"

    page = File.read!(Path.join([out, row["path"], "EEx.md"]))
    assert page =~ ~r/\A# EEx\n/
    assert page =~ "## Functions"
    assert page =~ "### eval_string/3"
    assert page =~ "```\neval_string(source, bindings \\\\ [], options \\\\ [])\n```"

    metadata =
      Path.join([out, row["path"], "metadata.json"])
      |> File.read!()
      |> :jiffy.decode([:return_maps])

    assert metadata["source_url"] == row["links"]["Source"]
    assert "EEx.md" in metadata["files"]

    assert Docs.run(apps: [:eex], out: out).skipped_by == %{already_fetched: 1}
  end

  test "OTP applications are listed from OTP's own list; without chunks they are skipped" do
    apps = Docs.installed_apps()
    assert Enum.find(apps, &(&1.app == :elixir)).kind == :elixir
    assert %{kind: :otp, source_url: url} = Enum.find(apps, &(&1.app == :stdlib))
    assert url =~ "github.com/erlang/otp/tree/OTP-"
    refute Enum.any?(apps, &(&1.app == :jiffy))

    summary = Docs.run(apps: [:stdlib], out: Path.join(Tmp.dir!(), "out"))
    assert summary.fetched + Map.get(summary.skipped_by, :no_docs, 0) == 1
  end

  test "erlang+html docs become Markdown; hidden modules and entries are left out" do
    chunk =
      {:docs_v1, 1, :erlang, "application/erlang+html",
       %{
         "en" => [
           {:p, [], ["Lists ", {:em, [], ["of"]}, " things."]},
           {:pre, [], [{:code, [], ["1> lists:sum([1])."]}]}
         ]
       }, %{},
       [
         {{:function, :sum, 1}, 1, ["sum(List)"],
          %{
            "en" => [
              {:p, [], ["Adds ", {:code, [], ["List"]}, "."]},
              {:ul, [], [{:li, [], ["one"]}, {:li, [], ["two"]}]}
            ]
          }, %{}},
         {{:function, :secret, 0}, 1, ["secret()"], :hidden, %{}},
         {{:type, :t, 0}, 1, ["t()"], %{"en" => [{:p, [], ["A type."]}]},
          %{deprecated: "use u/0"}}
       ]}

    page = Markdown.render(:lists, chunk)
    assert page =~ "# lists\n\nLists *of* things.\n\n```\n1> lists:sum([1]).\n```"

    assert page =~
             "## Functions\n\n### sum/1\n\n```\nsum(List)\n```\n\nAdds `List`.\n\n- one\n- two"

    assert page =~ "## Types\n\n### t/0"
    assert page =~ "> Deprecated: use u/0"
    refute page =~ "secret"

    assert Markdown.render(:x, put_elem(chunk, 4, :hidden)) == nil
    assert Markdown.render(:x, {:docs_v1, 1, :erlang, "text/markdown", :none, %{}, []}) == nil
  end
end
