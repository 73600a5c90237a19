"""The builder's config: every shipped config file loads, and bad values name their field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from python_worker.dataset import __main__ as cli
from python_worker.dataset.config import (
    DatasetConfig,
    config_from_dict,
    explain,
    load_config,
    parse_config,
)
from python_worker.dataset.errors import ConfigError, InvalidRequest

CONFIGS = sorted((Path(__file__).parents[1] / "dataset" / "configs").glob("*.toml"))


def test_configs_exist() -> None:
    assert {p.name for p in CONFIGS} >= {"default.toml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_file_loads(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, DatasetConfig)


def test_default_toml_is_the_defaults() -> None:
    default = next(p for p in CONFIGS if p.name == "default.toml")
    assert load_config(default) == DatasetConfig()


def test_empty_text_means_defaults() -> None:
    assert parse_config("") == DatasetConfig()
    assert parse_config("  \n") == DatasetConfig()


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (
            {"dedup": {"threshold": 1.5}},
            "dedup.threshold must be a number in [0.05, 1.0], got 1.5",
        ),
        (
            {"dedup": {"treshold": 0.9}},
            "dedup.treshold is not a dataset builder setting (did you mean 'dedup.threshold'?)",
        ),
        ({"workers": True}, "workers must be an integer, got True"),
        ({"stage2": {"fim_style": "gpt"}}, "stage2.fim_style: unknown FIM style 'gpt'"),
        (
            {"stage2": {"span_weights": {"lines": 1.0}}},
            "stage2.span_weights: unknown span kind 'lines'",
        ),
        (
            {"stage1": {"mix": {"elixir": 2.0}}},
            "stage1.mix.elixir must be a number in [0.0, 1.0], got 2.0",
        ),
        (
            {"report": {"chart_format": "gif"}},
            "report.chart_format must be one of ['svg', 'png'], got 'gif'",
        ),
        ({"clean": {"vendored_dirs": "deps"}}, "clean.vendored_dirs must be a list, got 'deps'"),
        (
            {"stage3": {"book_dirs": [{"path": "x", "licence": "MIT"}]}},
            "stage3.book_dirs[0].licence is not a dataset builder setting (did you mean 'stage3.book_dirs[0].license'?)",
        ),
        (
            {"clean": {"generated_markers": ["(unclosed"]}},
            "clean.generated_markers[0]: bad regex",
        ),
    ],
)
def test_bad_values_name_the_field(raw: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    assert needle in str(info.value)
    assert isinstance(info.value, InvalidRequest) and isinstance(info.value, ValueError)


def test_malformed_text_names_the_origin(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config_json: not valid JSON"):
        parse_config("{oops", origin="config_json")
    bad = tmp_path / "bad.toml"
    bad.write_text("[dedup\nthreshold = 0.9\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"config: the top level must be a table/object, got \[1, 2\]"):
        parse_config("[1, 2]")


def test_tables_of_rates_update_the_defaults() -> None:
    config = parse_config("[stage1.mix]\nerlang = 0.3\n", fmt="toml")
    assert config.stage1.mix == {"elixir": 1.0, "erlang": 0.3}
    config = parse_config(json.dumps({"stage3": {"book_dirs": ["a", {"path": "b", "license": "MIT"}]}}))
    assert [(b.path, b.license) for b in config.stage3.book_dirs] == [
        ("a", "unknown"),
        ("b", "MIT"),
    ]


def test_explain_covers_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    lines = explain()
    assert any(line.startswith("dedup.threshold = 0.85") for line in lines)
    assert any(line.startswith("stage2.fim_style = ") for line in lines)
    assert cli.main(["--explain-config"]) == 0
    assert "replay.share" in capsys.readouterr().out
