"""The shared typed-config machinery, on a small config of its own (both real configs have their own tests)."""

from __future__ import annotations

# ruff: noqa: RUF009
from dataclasses import dataclass
from pathlib import Path

import pytest

from python_worker import typed_config
from python_worker.typed_config import section, setting


class Bad(ValueError):
    pass


@dataclass
class Book:
    path: str = setting("", "Where.")
    pages: int = setting(1, "How many.", min=1)


@dataclass
class Inner:
    rate: float = setting(0.5, "A share.", min=0.0, max=1.0)
    weights: dict[str, float] = setting({"a": 1.0, "b": 2.0}, "Weights.", min=0.0)


@dataclass
class Outer:
    name: str = setting("x", "A name.", choices=("x", "y"))
    flag: bool | None = setting(None, "Unset means automatic.")
    books: list[Book] = setting([], "Books, or bare paths.", shorthand="path")
    inner: Inner = section(Inner, "Nested.")


def read(raw: object, origin: str = "cfg") -> Outer:
    return typed_config.read(Outer, raw, kind="test", error=Bad, origin=origin)


def test_defaults_are_not_shared_between_instances() -> None:
    a, b = Outer(), Outer()
    a.inner.weights["a"] = 9.0
    assert b.inner.weights == {"a": 1.0, "b": 2.0}


def test_a_table_updates_its_defaults_key_by_key_and_shorthand_expands() -> None:
    config = read({"inner": {"weights": {"b": 0.5}}, "books": ["p", {"path": "q", "pages": 3}], "flag": True})
    assert config.inner.weights == {"a": 1.0, "b": 0.5}
    assert [(b.path, b.pages) for b in config.books] == [("p", 1), ("q", 3)]
    assert config.flag is True


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"inner": {"rat": 0.1}}, "cfg: inner.rat is not a test setting (did you mean 'inner.rate'?)"),
        ({"inner": {"rate": 1.5}}, "cfg: inner.rate must be a number in [0.0, 1.0], got 1.5"),
        ({"inner": {"rate": float("nan")}}, "cfg: inner.rate must be a finite number, got nan"),
        ({"inner": {"weights": {"a": -1}}}, "cfg: inner.weights.a must be a number in [0.0, inf], got -1"),
        ({"name": "z"}, "cfg: name must be one of ['x', 'y'], got 'z'"),
        ({"flag": "yes"}, "cfg: flag must be true or false, got 'yes'"),
        ({"books": [{"pages": 0}]}, "cfg: books[0].pages must be an integer in [1, inf], got 0"),
        ({"inner": 3}, "cfg: inner must be a table/object, got 3"),
        ([1], "cfg: the top level must be a table/object, got [1]"),
    ],
)
def test_errors_name_the_dotted_field(raw: object, message: str) -> None:
    with pytest.raises(Bad) as info:
        read(raw)
    assert message in str(info.value)


def test_check_applies_the_same_rules_to_an_instance() -> None:
    typed_config.check(Outer(), error=Bad)
    config = Outer(books=[Book(pages=0)])
    with pytest.raises(Bad, match=r"^c\.books\[0\]\.pages must be an integer in \[1, inf\], got 0$"):
        typed_config.check(config, error=Bad, prefix="c.")


def test_describe_lists_sections_before_their_fields() -> None:
    names = [name for name, _, _ in typed_config.describe(Outer)]
    assert names == ["name", "flag", "books", "inner", "inner.rate", "inner.weights"]
    assert all(help_text for _, _, help_text in typed_config.describe(Outer))


def test_files_are_read_by_suffix_and_errors_name_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("[inner]\nrate = 0.25\n")
    assert typed_config.load(toml, Bad) == {"inner": {"rate": 0.25}}
    broken = tmp_path / "c.json"
    broken.write_text("{")
    with pytest.raises(Bad, match=r"c\.json: not valid JSON"):
        typed_config.load(broken, Bad)
    with pytest.raises(Bad, match="config file .*missing.json does not exist"):
        typed_config.load(tmp_path / "missing.json", Bad)
