"""Python's side of the codec golden vectors (tests/golden/vectors.json).

The Elixir side is elixir/test/devstral_elixir/proto/golden_vectors_test.exs,
which also runs `scripts/make_golden_vectors.py --check-decode` on Elixir's
encodings. Here: the committed file is what Python's protobuf produces today,
and the checker the Elixir test relies on does catch disagreements.

    .venv/bin/python -m pytest python_worker/tests/test_golden_vectors.py -q
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf import message as pb_message
from google.protobuf.internal import api_implementation

ROOT = Path(__file__).resolve().parents[2]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_golden_vectors", ROOT / "scripts" / "make_golden_vectors.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gv = load_script()
COMMITTED: dict[str, Any] = json.loads(gv.VECTORS_PATH.read_text(encoding="utf-8"))
VECTORS = COMMITTED["vectors"]
INVALID = COMMITTED["invalid"]


def test_python_uses_the_upb_backend() -> None:
    # The vectors pin upb's deterministic map order; another backend differs.
    assert api_implementation.Type() == "upb"


def test_committed_vectors_are_current() -> None:
    fresh = gv.render(gv.build())
    committed = gv.VECTORS_PATH.read_text(encoding="utf-8")
    assert fresh == committed, "run: .venv/bin/python scripts/make_golden_vectors.py"


def test_vectors_cover_every_message_of_the_contract() -> None:
    from python_worker.proto import worker_pb2

    covered = {v["type"] for v in VECTORS}
    shapes = {
        "PortFrame",
        "GenerateRequest",
        "GenerateResponse",
        "JobEvent",
        "HealthResponse",
    }
    assert {f"devstral.worker.v1.{name}" for name in shapes} <= covered
    assert len(worker_pb2.DESCRIPTOR.message_types_by_name) > 30


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_vector_decodes_in_python(vector: dict[str, Any]) -> None:
    cls = gv.message_class(vector["type"])
    parsed = cls.FromString(bytes.fromhex(vector["hex"]))
    assert gv.describe(parsed) == vector["value"]
    parsed.DiscardUnknownFields()
    assert parsed.SerializeToString(deterministic=True).hex() == vector["canonical_hex"]


@pytest.mark.parametrize("vector", INVALID, ids=lambda v: v["name"])
def test_invalid_vector_is_refused_by_python(vector: dict[str, Any]) -> None:
    with pytest.raises(pb_message.DecodeError):
        gv.message_class(vector["type"]).FromString(bytes.fromhex(vector["hex"]))


def test_negative_int32_is_a_ten_byte_varint() -> None:
    frame = next(v for v in VECTORS if v["name"] == "port_frame_error")
    assert "28feffffffffffffffff01" in frame["hex"]  # status_code = -2


def write_encodings(path: Path, override: dict[str, str]) -> Path:
    encoded = [{"name": v["name"], "hex": override.get(v["name"], v["canonical_hex"])} for v in VECTORS]
    path.write_text(json.dumps(encoded), encoding="utf-8")
    return path


def test_check_decode_accepts_canonical_bytes(tmp_path: Path) -> None:
    assert gv.check_decode(write_encodings(tmp_path / "ok.json", {})) == []


def test_check_decode_reports_every_disagreement(tmp_path: Path) -> None:
    bad = {
        # a different value
        "port_frame_unknown_kind": "08021863",
        # right value, wrong bytes: an unpacked repeated field
        "unpacked_repeated": "1001",
        # not protobuf at all
        "embed_response": "ff",
    }
    path = write_encodings(tmp_path / "bad.json", bad)
    encoded = json.loads(path.read_text())
    path.write_text(json.dumps([e for e in encoded if e["name"] != "maps_all"]))
    problems = gv.check_decode(path)
    assert any(p.startswith("no Elixir encoding for: maps_all") for p in problems)
    for name in bad:
        assert any(p.startswith(f"{name}:") for p in problems), (name, problems)
