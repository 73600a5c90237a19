"""A small scraped corpus, written by the tests, with every case the builder must handle.

`write_corpus(root)` lays out what `mix scrape.hex` / `mix scrape.docs` write
(manifest.jsonl + one directory per package with metadata.json) and returns a
`Corpus` naming the planted files, so tests can assert on each one.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from python_worker.config import REPO_ROOT

# The eval sets ship with the project (evals/): tests that need them fail, never skip, without them.
EVALS = REPO_ROOT / "evals"
HUMANEVAL = EVALS / "multipl-e-humaneval-elixir.jsonl"

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "amber",
    "basil",
    "cedar",
    "dune",
    "ember",
    "fjord",
    "grove",
    "harbor",
    "iris",
    "jasper",
    "kestrel",
    "lagoon",
    "meadow",
    "nectar",
]

SECRET_CONFIG = """import Config

config :shop, Shop.Repo,
  username: "postgres",
  password: "hunter2hunter2",
  hostname: "db.internal"

config :shop, ShopWeb.Endpoint,
  secret_key_base: "Qm9vbXNoYWthbGFrYWJvb21zaGFrYWxha2Fib29tc2hha2FsYWth",
  aws_access_key_id: "AKIAIOSFODNN7ABCDEFG"

# Maintainer: jane.doe@corp-mail.io (placeholder user@example.com stays)
config :shop, :signing_key, \"\"\"
-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi3Jq5rM7bQ6OZcbVWcV4ZQ3
-----END RSA PRIVATE KEY-----
\"\"\"
"""

SOLUTION = """    numbers
    |> Enum.with_index()
    |> Enum.any?(fn {a, i} -> Enum.any?(Enum.drop(numbers, i + 1), fn b -> abs(a - b) < threshold end) end)"""


def elixir_module(name: str, seed: int, functions: int = 6) -> str:
    """A plausible Elixir module with docs, doctests, specs, pipes and case clauses."""
    rng = random.Random(seed)
    words = rng.sample(WORDS, 12)
    lines = [
        f"defmodule {name} do",
        '  @moduledoc """',
        f"  Utilities for {words[0]} and {words[1]} handling in the {words[2]} pipeline.",
        "",
        f"  Every function here keeps {words[3]} values intact while mapping {words[4]} data.",
        '  """',
        "",
    ]
    for i in range(functions):
        fname = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{i}"
        k = rng.randint(2, 99)
        lines += [
            '  @doc """',
            f"  Maps every {rng.choice(WORDS)} in `items` through the {rng.choice(WORDS)} rule.",
            "",
            "  ## Examples",
            "",
            f"      iex> {name}.{fname}([1, 2])",
            f"      [{1 * k + 1}, {2 * k + 1}]",
            '  """',
            f"  @spec {fname}([integer()]) :: [integer()]",
            f"  def {fname}(items) when is_list(items) do",
            "    items",
            f"    |> Enum.map(&(&1 * {k}))",
            "    |> Enum.map(fn x ->",
            "      case rem(x, 2) do",
            f"        0 -> x + {rng.choice([1, 1])}",
            f"        _ -> x + {rng.choice([1, 1])}",
            "      end",
            "    end)",
            "  end",
            "",
            f"  defp {rng.choice(WORDS)}_{i}(x), do: x * {rng.randint(2, 999)} + {rng.randint(2, 999)}",
            "",
        ]
    lines.append("end")
    return "\n".join(lines) + "\n"


def exunit_module(name: str, function: str) -> str:
    return f"""defmodule {name}Test do
  use ExUnit.Case, async: true
  doctest {name}

  describe "{function}/1" do
    test "maps every item" do
      assert is_list({name}.{function}([1, 2, 3]))
    end

    test "keeps the length" do
      assert length({name}.{function}([4, 5])) == 2
    end
  end
end
"""


def erlang_module(name: str, seed: int) -> str:
    rng = random.Random(seed)
    out = [f"-module({name}).", "-export([run/1, step/2]).", ""]
    out += [
        "run(List) when is_list(List) ->",
        f"    lists:map(fun(X) -> step(X, {rng.randint(2, 999)}) end, List);",
        "run(_) ->",
        "    {error, badarg}.",
        "",
        "step(X, K) ->",
        f"    Y = X * K + {rng.randint(2, 999)},",
        f"    case Y rem {rng.randint(2, 9)} of",
        f"        0 -> {{ok, Y, {rng.choice(WORDS)}}};",
        f"        _ -> {{skip, Y, {rng.choice(WORDS)}}}",
        "    end.",
    ]
    return "\n".join(out) + "\n"


GUIDE = """# Getting started with Shop

Shop is a library for building carts. This guide walks through the basics and
shows how every piece fits together, from the first cart to checkout.

## Creating a cart

A cart is a plain struct. You create one with `Shop.Cart.new/0` and add items
with `Shop.Cart.add/3`, which returns the updated cart.

```elixir
cart = Shop.Cart.new()
cart = Shop.Cart.add(cart, :apple, 3)
```

Counting items is a single call:

```elixir
iex> cart = Shop.Cart.add(Shop.Cart.new(), :apple, 3)
iex> Shop.Cart.count(cart)
3
```

## Exercises

1. Write a function that empties a cart.

```elixir
def empty(_cart), do: Shop.Cart.new()
```
"""


@dataclass
class Corpus:
    hex_dir: Path
    docs_dir: Path
    book_dir: Path
    extra_eval: Path
    # (source label, path) of planted files -> the reason they must be dropped
    planted: dict[tuple[str, str], str] = field(default_factory=dict)
    # (source label, path) of files that must survive
    kept: list[tuple[str, str]] = field(default_factory=list)


def _package(
    base: Path,
    name: str,
    version: str,
    files: dict[str, bytes | str],
    downloads: int,
    licenses: list[str],
) -> dict:
    rel = f"{name}-{version}"
    d = base / rel
    for path, content in files.items():
        p = d / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    meta = {
        "name": name,
        "version": version,
        "licenses": licenses,
        "downloads": {"all": downloads},
    }
    (d / "metadata.json").write_text(json.dumps(meta))
    return {
        "name": name,
        "version": version,
        "licenses": licenses,
        "sha256": "0" * 64,
        "files": len(files),
        "path": rel,
    }


def _write_manifest(d: Path, rows: list[dict]) -> None:
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_corpus(root: Path) -> Corpus:
    hex_dir, docs_dir, book_dir = (
        root / "raw" / "hex",
        root / "raw" / "docs",
        root / "books" / "guide",
    )
    extra_eval = root / "extra_eval.jsonl"
    corpus = Corpus(hex_dir, docs_dir, book_dir, extra_eval)
    rows = []

    alpha = elixir_module("Alpha", 1)
    helpers = elixir_module("Alpha.Helpers", 2, functions=8)
    fn_name = alpha.split("def ", 1)[1].split("(", 1)[0]
    near_helpers = helpers.replace("Maps every", "Turns each", 3).replace("end\n", "end\n\n", 2)
    humaneval_prompt = json.loads(HUMANEVAL.read_text().splitlines()[0])["prompt"]
    rng = random.Random(7)
    junk = bytes(rng.randrange(256) for _ in range(4096))
    rows.append(
        _package(
            hex_dir,
            "alpha",
            "1.2.0",
            {
                "lib/alpha.ex": alpha,
                "lib/alpha/helpers.ex": helpers,
                "test/alpha_test.exs": exunit_module("Alpha", fn_name),
                "config/config.exs": SECRET_CONFIG,
                "README.md": GUIDE,
                "deps/jason/lib/jason.ex": elixir_module("Jason", 3),
                "lib/blob.ex": junk,
                "lib/latin1.ex": 'defmodule Caf\xe9 do\n  def name, do: "caf\xe9 au lait"\nend\n'.encode("latin-1"),
                "lib/empty.ex": "",
                "lib/tiny.ex": "x = 1\n",
                "lib/minified.ex": "defmodule M do " + "def f(x), do: x; " * 20000 + "end",
                "lib/shop.pb.ex": "# Generated by the protocol buffer compiler. DO NOT EDIT!\n"
                + elixir_module("Shop.PB", 4),
                "lib/art.ex": "# " + "=-+*/\\|<>" * 40 + "\n" + ("#  ~~~~ ==== ---- ////\n" * 40),
                "LICENSE": "MIT License\n",
            },
            downloads=5000,
            licenses=["MIT"],
        )
    )
    label = "alpha@1.2.0"
    corpus.planted.update(
        {
            (label, "deps/jason/lib/jason.ex"): "vendored",
            (label, "lib/blob.ex"): "binary",
            (label, "lib/latin1.ex"): "not_utf8",
            (label, "lib/empty.ex"): "empty",
            (label, "lib/tiny.ex"): "tiny",
            (label, "lib/minified.ex"): "long_lines",
            (label, "lib/shop.pb.ex"): "generated",
            (label, "lib/art.ex"): "low_alnum",
            (label, "LICENSE"): "unsupported_type",
        }
    )
    corpus.kept += [
        (label, "lib/alpha.ex"),
        (label, "lib/alpha/helpers.ex"),
        (label, "config/config.exs"),
    ]

    rows.append(
        _package(
            hex_dir,
            "alpha",
            "1.1.0",
            {
                "lib/alpha.ex": alpha.replace("\n", "\r\n"),
                "lib/alpha/helpers.ex": near_helpers,
            },
            downloads=5000,
            licenses=["MIT"],
        )
    )
    corpus.planted[("alpha@1.1.0", "lib/alpha.ex")] = "exact_duplicate"
    corpus.planted[("alpha@1.1.0", "lib/alpha/helpers.ex")] = "near_duplicate"

    contaminated = humaneval_prompt + "numbers |> Enum.sort() |> Enum.chunk_every(2, 1, :discard)\n  end\nend\n"
    solution_file = "defmodule Close do\n  def close?(numbers, threshold) do\n" + SOLUTION + "\n  end\nend\n"
    rows.append(
        _package(
            hex_dir,
            "beta",
            "0.3.0",
            {
                "lib/beta.ex": elixir_module("Beta", 5),
                "lib/human_eval.ex": contaminated,
                "lib/close.ex": solution_file,
            },
            downloads=100,
            licenses=["Apache-2.0"],
        )
    )
    corpus.planted[("beta@0.3.0", "lib/human_eval.ex")] = "contaminated"
    corpus.planted[("beta@0.3.0", "lib/close.ex")] = "contaminated"
    corpus.kept.append(("beta@0.3.0", "lib/beta.ex"))

    for i, name in enumerate(["gamma", "delta", "epsilon", "zeta", "eta", "theta"]):
        mod = name.capitalize()
        rows.append(
            _package(
                hex_dir,
                name,
                f"0.{i}.0",
                {
                    f"lib/{name}.ex": elixir_module(mod, 10 + i),
                    f"src/{name}_native.erl": erlang_module(f"{name}_native", 20 + i),
                    f"test/{name}_test.exs": exunit_module(
                        mod,
                        elixir_module(mod, 10 + i).split("def ", 1)[1].split("(", 1)[0],
                    ),
                },
                downloads=10 * i,
                licenses=["MIT"],
            )
        )
    _write_manifest(hex_dir, rows)

    docs_rows = [
        _package(
            docs_dir,
            "shop_docs",
            "1.0.0",
            {
                "Shop.Cart.md": GUIDE.replace("Getting started with Shop", "Shop.Cart"),
                "Shop.Order.md": "# Shop.Order\n\n## Placing an order\n\n"
                + "Orders are created from carts and move through states in a fixed sequence "
                "from pending to paid.\n\n```elixir\niex> Shop.Order.state(Shop.Order.new())\n:pending\n```\n",
            },
            downloads=0,
            licenses=["Apache-2.0"],
        )
    ]
    _write_manifest(docs_dir, docs_rows)

    book_dir.mkdir(parents=True)
    for n, title in [
        (10, "Advanced processes"),
        (2, "Pattern matching"),
        (1, "Introduction"),
    ]:
        (book_dir / f"{n:d}-{title.lower().replace(' ', '-')}.md").write_text(
            f"# {title}\n\n## About {title.lower()}\n\n"
            + f"This chapter explains {title.lower()} in Elixir with small examples you can "
            "type into IEx yourself, one step at a time.\n\n"
            + f'```elixir\niex> String.length("{title}")\n{len(title)}\n```\n'
        )

    extra_eval.write_text(
        json.dumps(
            {
                "name": "close_numbers",
                "prompt": "# close numbers\n",
                "canonical_solution": SOLUTION,
            }
        )
        + "\n"
    )
    return corpus


def test_corpus_layout(tmp_path: Path) -> None:
    c = write_corpus(tmp_path)
    rows = [json.loads(line) for line in (c.hex_dir / "manifest.jsonl").read_text().splitlines()]
    assert all((c.hex_dir / r["path"] / "metadata.json").is_file() for r in rows)
    assert (c.hex_dir / "alpha-1.1.0" / "lib" / "alpha.ex").read_bytes().count(b"\r\n") > 10
