defmodule DevstralElixir.Scrape.LocalTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Scrape.{Local, Manifest}
  alias DevstralElixir.Test.Scrape.{HexFixtures, Tmp}

  @moduletag :capture_log

  setup do
    root = Tmp.dir!()
    app = Path.join(root, "my_app")
    File.cp_r!(Path.join(HexFixtures.fixtures(), "sample"), app)
    secret = Path.join(root, "secret.ex")
    File.write!(secret, "never copied")
    File.ln_s!(secret, Path.join(app, "lib/linked.ex"))
    File.ln_s!(root, Path.join(app, "lib/loop"))
    File.mkdir_p!(Path.join(app, "deps/dep/lib"))
    File.write!(Path.join(app, "deps/dep/lib/dep.ex"), "vendored")
    File.write!(Path.join(app, "lib/blob.ex"), <<"x", 0, "y">>)
    %{root: root, app: app, out: Path.join(root, "out")}
  end

  test "ingests a directory without following links, and resumes", %{
    root: root,
    app: app,
    out: out
  } do
    test = self()
    missing = Path.join(root, "missing")

    summary =
      Local.run([app, missing, secret_file(root)], [out: out], &send(test, {:progress, &1}))

    assert summary.fetched == 1
    assert summary.rejected == %{not_a_directory: 2}

    assert [row] = Manifest.read_rows(Manifest.path(out))
    assert row["name"] == "my_app"
    assert row["version"] =~ ~r/^[0-9a-f]{12}$/
    assert String.starts_with?(row["sha256"], row["version"])
    assert row["licenses"] == ["MIT"]
    assert row["files"] == HexFixtures.sample_kept()
    assert row["source_path"] == app

    dest = Path.join(out, row["path"])
    refute File.exists?(Path.join(dest, "lib/linked.ex"))
    refute File.exists?(Path.join(dest, "lib/loop"))
    refute File.exists?(Path.join(dest, "deps"))
    refute File.exists?(Path.join(dest, "lib/blob.ex"))

    assert File.read!(Path.join(dest, "lib/sample.ex")) ==
             File.read!(Path.join(app, "lib/sample.ex"))

    assert %{"source" => "local", "files" => files} =
             dest |> Path.join("metadata.json") |> File.read!() |> :jiffy.decode([:return_maps])

    assert "mix.exs" in files

    assert_received {:progress, {:package, %{name: "my_app", status: :ok, files: 6}}}

    # Unchanged: skipped. Changed: a new version.
    assert Local.run([app], out: out).skipped_by == %{already_fetched: 1}
    File.write!(Path.join(app, "lib/new.ex"), "defmodule New do\nend\n")
    assert Local.run([app], out: out, license: "Apache-2.0").fetched == 1
    rows = Manifest.read_rows(Manifest.path(out))
    assert length(rows) == 2
    assert List.last(rows)["licenses"] == ["Apache-2.0"]
  end

  test "caps and an output directory inside the source", %{app: app, out: out} do
    assert Local.run([app], out: out, max_files: 3).rejected == %{too_many_files: 1}
    assert Local.run([app], out: out, max_file_bytes: 100).rejected == %{too_large: 1}
    assert Local.run([app], out: Path.join(app, "out")).rejected == %{overlaps_out: 1}
  end

  test "a directory of compiled code only is rejected, not recorded empty", %{
    root: root,
    out: out
  } do
    ebin = Path.join(root, "compiled/ebin")
    File.mkdir_p!(ebin)
    File.write!(Path.join(ebin, "app.beam"), <<"FOR1", 0, 0>>)

    assert Local.run([Path.dirname(ebin)], out: out).rejected == %{no_source_files: 1}
    assert Manifest.read_rows(Manifest.path(out)) == []
    assert File.read!(Path.join(out, "skipped.jsonl")) =~ "no Elixir, Erlang or Markdown files"
  end

  defp secret_file(root), do: Path.join(root, "secret.ex")
end
