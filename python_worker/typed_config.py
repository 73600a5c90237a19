"""Typed configuration: dataclass fields with help text, read from JSON/TOML with field-precise errors.

The dataset builder's and the trainer's settings are plain dataclasses whose
fields are declared with `setting()` (a default, help text and optional
min/max/choices checks) or `section()` (a nested dataclass). This module is the
machinery both share:

- `read(cls, raw, ...)` builds an instance from a JSON/TOML mapping: unknown
  keys (with a did-you-mean), wrong types and out-of-range values raise the
  caller's error type naming the dotted field, so a typo never silently falls
  back to a default;
- `check(obj, ...)` applies the same type checks to an instance built some
  other way (e.g. merged from a proto);
- `describe(cls)` lists every field with its default and help, for
  `--explain-config` style output;
- `load(path, ...)` / `parse(text, ...)` read the text of a config file.

Every error reads `<origin>: <dotted.field> must be <rule>, got <value>`
(the origin, a file name or request field, is left out when empty).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
import typing
from dataclasses import field
from pathlib import Path
from typing import Any

Error = type[Exception]


def setting(default: Any, help: str, **checks: Any) -> Any:
    """A dataclass field with help text and optional checks.

    checks: `min`/`max` (inclusive bounds of a number, or of each value of a
    list or table), `choices` (allowed strings) and `shorthand` (for a list of
    dataclasses: a bare string stands for `{shorthand: string}`).
    """
    meta = {"help": help, **checks}
    if isinstance(default, list | dict):
        # A JSON round trip is a deep copy, so no two instances share a nested default.
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type, help: str) -> Any:
    """A nested dataclass of settings, shown as `[name]` by describe()."""
    return field(default_factory=cls, metadata={"help": help})


def describe(cls: type, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted name, default, help) of every field; a section's row (default: an instance) precedes its fields."""
    rows: list[tuple[str, Any, str]] = []
    defaults = cls()
    for f in dataclasses.fields(cls):
        name, value = prefix + f.name, getattr(defaults, f.name)
        rows.append((name, value, f.metadata.get("help", "")))
        if dataclasses.is_dataclass(value):
            rows.extend(describe(type(value), name + "."))
    return rows


def fail(error: Error, origin: str, name: str, rule: str, value: Any) -> Exception:
    """The one message shape: `<origin>: <name> must be <rule>, got <value>`."""
    where = f"{origin}: " if origin else ""
    return error(f"{where}{name} must be {rule}, got {value!r}")


def load(path: str | Path, error: Error) -> Any:
    """The parsed content of a .json or .toml file (TOML by suffix); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise error(f"config file {p} does not exist")
    fmt = "toml" if p.suffix.lower() == ".toml" else "json"
    return parse(p.read_text(encoding="utf-8"), fmt, str(p), error)


def parse(text: str, fmt: str, origin: str, error: Error) -> Any:
    try:
        return tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise error(f"{origin}: not valid {fmt.upper()}: {e}") from None


def read(cls: type, raw: Any, *, kind: str, error: Error, origin: str = "", prefix: str = "") -> Any:
    """An instance of `cls` from a mapping; fields it does not name keep their defaults.

    A table of numbers (e.g. sampling rates) updates its default key by key, so
    `[stage1.mix] erlang = 0.3` leaves the other languages as they were.
    `kind` names the settings in the unknown-field error ("a training setting").
    """
    if not isinstance(raw, dict):
        raise fail(error, origin, prefix.rstrip(".") or "the top level", "a table/object", raw)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            where = f"{origin}: " if origin else ""
            raise error(
                f"{where}{prefix}{key} is not a {kind} setting{hint}; known fields here: {', '.join(sorted(fields))}"
            )
    defaults = cls()
    values: dict[str, Any] = {}
    for name, value in raw.items():
        f = fields[name]
        values[name] = _coerce(value, hints[name], f.metadata, prefix + name, origin, error, kind)
        if isinstance(values[name], dict):
            values[name] = {**getattr(defaults, name), **values[name]}
    return cls(**values)


def check(obj: Any, *, error: Error, origin: str = "", prefix: str = "") -> None:
    """Apply read()'s type and range checks to an existing instance (nested sections included)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check(value, error=error, origin=origin, prefix=f"{prefix}{f.name}.")
        else:
            _coerce(value, hints[f.name], f.metadata, prefix + f.name, origin, error, "")


def _coerce(value: Any, tp: Any, meta: Any, name: str, origin: str, error: Error, kind: str) -> Any:
    def bad(rule: str) -> Exception:
        return fail(error, origin, name, rule, value)

    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # check() walking an instance
            check(value, error=error, origin=origin, prefix=name + ".")
            return value
        shorthand = meta.get("shorthand")
        if shorthand and isinstance(value, str):
            value = {shorthand: value}
        return read(tp, value, kind=kind, error=error, origin=origin, prefix=name + ".")
    args = typing.get_args(tp)
    if type(None) in args:  # `X | None`: None, or a valid X
        if value is None:
            return None
        (tp,) = [a for a in args if a is not type(None)]
    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        _range(value, meta, bad)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise bad("a finite number")
        _range(float(value), meta, bad)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad("a string")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise bad(f"one of {list(choices)}")
        return value
    container = typing.get_origin(tp)
    if container is list:
        (item_tp,) = args
        if not isinstance(value, list):
            raise bad("a list")
        return [_coerce(v, item_tp, meta, f"{name}[{i}]", origin, error, kind) for i, v in enumerate(value)]
    if container is dict:
        _, val_tp = args
        if not isinstance(value, dict):
            raise bad("a table/object")
        return {str(k): _coerce(v, val_tp, meta, f"{name}.{k}", origin, error, kind) for k, v in value.items()}
    raise AssertionError(f"unsupported config type {tp} for {name}")


def _range(value: float, meta: Any, bad: Any) -> None:
    low, high = meta.get("min"), meta.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        kind = "an integer" if isinstance(value, int) else "a number"
        raise bad(f"{kind} in [{lo}, {hi}]")
