"""A small fixture corpus in the scrapers' layout, written by the end-to-end tests.

write_corpus(root)  ->  root/manifest.jsonl and one directory per package,
                        each with two Elixir modules and a Markdown guide.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

# Packages of the fixture corpus: each gives Elixir files (stages 1 and 2) and
# a Markdown guide (stage 3).
PACKAGES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
OPERATIONS: list[tuple[str, str, Callable[[int, int], int]]] = [
    ("add", "a + b", lambda a, b: a + b),
    ("sub", "a - b", lambda a, b: a - b),
    ("mul", "a * b", lambda a, b: a * b),
    ("max_of", "max(a, b)", max),
    ("min_of", "min(a, b)", min),
]


def core_module(name: str, n: int) -> str:
    title = name.title()
    functions = []
    for i, (op, body, fn) in enumerate(OPERATIONS[: 2 + n % 3]):
        functions.append(
            f'  @doc """\n  Returns the {op} of `a` and `b`, helper {n * 10 + i} of {name}.\n\n'
            f"      iex> {title}.Core.{op}({n}, {i + 1})\n      {fn(n, i + 1)}\n"
            f'  """\n  @spec {op}(integer(), integer()) :: integer()\n'
            f"  def {op}(a, b) do\n    {body}\n  end\n"
        )
    return (
        f'defmodule {title}.Core do\n  @moduledoc """\n  Arithmetic helpers of {name}, revision {n}.\n  """\n\n'
        + "\n".join(functions)
        + f"\n  def names_{name}(list) do\n    list\n    |> Enum.map(&to_string/1)\n"
        f"    |> Enum.filter(&(String.length(&1) > {n}))\n  end\nend\n"
    )


def server_module(name: str, n: int) -> str:
    title = name.title()
    return (
        f"defmodule {title}.Server do\n  use GenServer\n\n"
        f"  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)\n\n"
        f"  @impl true\n  def init(_opts), do: {{:ok, %{{count: {n}, items: []}}}}\n\n"
        f"  @impl true\n  def handle_call(:count_{name}, _from, state), do: {{:reply, state.count, state}}\n\n"
        f"  @impl true\n  def handle_cast({{:push_{name}, item}}, state) do\n"
        f"    {{:noreply, %{{state | items: [item | state.items], count: state.count + {n + 1}}}}}\n"
        f"  end\nend\n"
    )


def guide(name: str, n: int) -> str:
    title = name.title()
    return (
        f"# Getting started with {title}\n\n"
        f"The {name} package shows how to write small, well documented functions in Elixir. "
        f"This chapter walks through revision {n} of its core module and explains pattern "
        f"matching, pipelines and documentation tests in plain words.\n\n"
        f"## Using {title}.Core\n\n"
        f"Call `{title}.Core.add/2` with two integers. The function is pure, so it is easy to "
        f"test with doctests, and every clause returns a new value instead of changing state.\n\n"
        f"```elixir\n{title}.Core.add({n}, 2)\n```\n\n"
        f"## Running the {title} server\n\n"
        f"The server is a GenServer that counts the items pushed to it. Start it under a "
        f"supervisor and send it casts; its state is a map with the count and the items.\n\n"
        f"```elixir\n{{:ok, _pid}} = {title}.Server.start_link([])\n"
        f"GenServer.cast({title}.Server, {{:push_{name}, :x}})\n```\n"
    )


def write_corpus(root: Path) -> Path:
    """A scraper-style input directory: manifest.jsonl and one directory per package."""
    rows = []
    for n, name in enumerate(PACKAGES, start=1):
        package = root / f"{name}-0.{n}.0"
        (package / "lib").mkdir(parents=True)
        (package / "guides").mkdir()
        (package / "lib" / f"{name}.ex").write_text(core_module(name, n))
        (package / "lib" / f"{name}_server.ex").write_text(server_module(name, n))
        (package / "guides" / "getting_started.md").write_text(guide(name, n))
        (package / "metadata.json").write_text(json.dumps({"name": name, "version": f"0.{n}.0"}))
        rows.append(
            {
                "name": name,
                "version": f"0.{n}.0",
                "licenses": ["MIT"],
                "sha256": "0" * 64,
                "files": 3,
                "path": package.name,
            }
        )
    (root / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root
