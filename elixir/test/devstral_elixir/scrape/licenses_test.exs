defmodule DevstralElixir.Scrape.LicensesTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Scrape.{KeepList, Licenses}

  test "loose names normalise to SPDX" do
    assert Licenses.normalize("Apache 2.0") == "Apache-2.0"
    assert Licenses.normalize(" MIT License ") == "MIT"
    assert Licenses.normalize("WTFPL") == "WTFPL"
  end

  test "the permissive filter" do
    allowed = Licenses.default()
    assert Licenses.check(["MIT"], allowed) == :ok
    assert Licenses.check(["apache license 2.0"], allowed) == :ok
    assert Licenses.check(["GPL-3.0", "MIT"], allowed) == :ok
    assert Licenses.check(["MIT OR GPL-3.0"], allowed) == :ok
    assert Licenses.check(["(Apache-2.0 AND MIT)"], allowed) == :ok
    assert {:error, {:license, _}} = Licenses.check(["MIT AND GPL-3.0"], allowed)

    assert {:error, {:license, "licence GPL-3.0 is not in the allowed list"}} =
             Licenses.check(["GPL-3.0"], allowed)

    assert {:error, {:license, "no licence stated"}} = Licenses.check([], allowed)
    assert {:error, {:license, "no licence stated"}} = Licenses.check(nil, allowed)
    assert {:error, {:license, _}} = Licenses.check(["NOASSERTION"], allowed)
    assert Licenses.check(["GPL-3.0"], ["gpl-3.0"]) == :ok
  end

  test "licence texts are recognised" do
    assert Licenses.detect("Apache License\nVersion 2.0, January 2004") == "Apache-2.0"
    assert Licenses.detect("Apache License, Version 2.0") == "Apache-2.0"
    assert Licenses.detect("Permission is hereby granted, free of charge, to any person") == "MIT"
    assert Licenses.detect("GNU GENERAL PUBLIC LICENSE Version 3") == "GPL"
    assert Licenses.detect("All rights reserved.") == nil
  end

  test "the keep list" do
    for path <-
          ~w(lib/a.ex mix.exs test/a_test.exs src/a.erl include/a.hrl README.md guide.cheatmd nb.livemd LICENSE LICENSE.txt COPYING NOTICE apps/x/LICENSE.md lib/A.EX) do
      assert KeepList.keep?(path), path
    end

    for path <-
          ~w(priv/static/app.js priv/static/x.ex apps/web/priv/static/y.md deps/jason/lib/jason.ex _build/dev/lib/a.ex node_modules/x/README.md logo.png mix.lock package.json priv/repo/seeds.json lib/a.beam) do
      refute KeepList.keep?(path), path
    end
  end
end
