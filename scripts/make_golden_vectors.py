"""Golden vectors for the Elixir protobuf codec, made by Python's protobuf.

    .venv/bin/python scripts/make_golden_vectors.py            # rewrite tests/golden/vectors.json
    .venv/bin/python scripts/make_golden_vectors.py --check-decode FILE

Each vector is a message Python built (or raw bytes Python accepts), with
    type           the full protobuf type name,
    hex            the bytes (Python's SerializeToString(deterministic=True) for
                   built messages; hand-written bytes for the raw ones),
    canonical_hex  what Python writes back after parsing `hex` and dropping
                   unknown fields: what the Elixir encoder must reproduce,
    value          the decoded message as JSON: fields by name, defaults left
                   out; bytes as hex, floats as strings ("0.5", "-0.0", "inf",
                   "nan"), enums by name (numbers when unknown), a oneof as its
                   set case, map keys as strings.
`invalid` lists bytes Python refuses, which the Elixir decoder must refuse too.

The Elixir test (elixir/test/devstral_elixir/proto/golden_vectors_test.exs)
decodes every vector, compares with `value`, re-encodes to `canonical_hex`, and
runs `--check-decode` on its own encodings, so that Python parses Elixir's
bytes back to the same `value`. python_worker/tests/test_golden_vectors.py
checks that this file still matches what Python produces.

The schema tests/golden/golden_test.proto covers the types the contract does
not use; its Python module is compiled into a temporary directory on demand.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import math
import struct
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `python_worker` importable
    sys.path.insert(0, str(ROOT))

from google.protobuf import message as pb_message
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from python_worker.proto import worker_pb2 as w

VECTORS_PATH = ROOT / "tests" / "golden" / "vectors.json"
GOLDEN_PROTO = ROOT / "tests" / "golden" / "golden_test.proto"

FD = FieldDescriptor
FLOAT_TYPES = (FD.TYPE_FLOAT, FD.TYPE_DOUBLE)


@functools.cache
def golden_module() -> ModuleType:
    """Compiles tests/golden/golden_test.proto to Python in a temp dir and imports it."""
    from grpc_tools import protoc

    out = Path(tempfile.mkdtemp(prefix="golden_pb2_"))
    args = [
        "protoc",
        f"-I{GOLDEN_PROTO.parent}",
        f"--python_out={out}",
        GOLDEN_PROTO.name,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {GOLDEN_PROTO}")
    spec = importlib.util.spec_from_file_location("golden_test_pb2", out / "golden_test_pb2.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def message_class(type_name: str) -> type[pb_message.Message]:
    """The Python class of a full protobuf type name such as devstral.worker.v1.PortFrame."""
    for module, package in (
        (w, "devstral.worker.v1."),
        (golden_module(), "devstral.golden.v1."),
    ):
        if type_name.startswith(package):
            cls: Any = module
            for part in type_name[len(package) :].split("."):
                cls = getattr(cls, part)
            return cls
    raise KeyError(f"no Python class for {type_name}")


# ---------------------------------------------------------------------------
# Describing decoded messages as JSON
# ---------------------------------------------------------------------------


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def describe_float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def describe_value(field: FieldDescriptor, value: Any) -> Any:
    if field.type in FLOAT_TYPES:
        return describe_float(value)
    if field.type == FD.TYPE_BYTES:
        return value.hex()
    if field.type == FD.TYPE_ENUM:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known else value
    if field.type == FD.TYPE_MESSAGE:
        return describe(value)
    return value


def map_key(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def is_default(field: FieldDescriptor, value: Any) -> bool:
    if field.type in FLOAT_TYPES:
        return struct.pack("<d", value) == bytes(8)  # -0.0 is not the default
    return value == field.default_value


def describe(msg: pb_message.Message) -> dict[str, Any]:
    """The JSON description of a message (see the module docstring)."""
    out: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        value = getattr(msg, field.name)
        if is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            if value:
                out[field.name] = {
                    map_key(k): describe_value(value_field, value[k]) for k in sorted(value, key=map_key)
                }
        elif field.is_repeated:
            if value:
                out[field.name] = [describe_value(field, v) for v in value]
        elif field.has_presence:
            if msg.HasField(field.name):
                out[field.name] = describe_value(field, value)
        elif not is_default(field, value):
            out[field.name] = describe_value(field, value)
    return out


# ---------------------------------------------------------------------------
# The vectors
# ---------------------------------------------------------------------------


def vector_from_message(name: str, msg: pb_message.Message) -> dict[str, Any]:
    return vector_from_bytes(name, msg.DESCRIPTOR, msg.SerializeToString(deterministic=True))


def vector_from_bytes(name: str, descriptor: Descriptor, data: bytes) -> dict[str, Any]:
    parsed = message_class(descriptor.full_name).FromString(data)
    parsed.DiscardUnknownFields()
    return {
        "name": name,
        "type": descriptor.full_name,
        "hex": data.hex(),
        "canonical_hex": parsed.SerializeToString(deterministic=True).hex(),
        "value": describe(parsed),
    }


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag(number, 2) + varint(len(payload)) + payload


def zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


UNICODE = "héllo ✓ 日本語 😀"


def built_messages() -> list[tuple[str, pb_message.Message]]:
    g = golden_module()
    generate = w.GenerateRequest(
        model="tiny",
        prompt="defmodule Foo do\n",
        params=w.SamplingParams(max_tokens=16, temperature=0.5, top_p=0.25, seed=0, stop=["\nend", ""]),
        request_id="req-1",
    )
    model = w.ModelInfo(
        id="data/models/tiny-elixir",
        path="/tmp/m",
        backend="transformers",
        device="cpu",
        dtype="float32",
        context_length=2048,
        parameters=123_456_789_012,
        fim=w.FimTokens(prefix="<fim_prefix>", suffix="<fim_suffix>", middle="<fim_middle>"),
        has_chat_template=True,
        active_adapter="",
    )
    return [
        ("port_frame_empty", w.PortFrame()),
        (
            "port_frame_request",
            w.PortFrame(
                call_id=7,
                method="Generate",
                kind=w.PortFrame.REQUEST,
                payload=generate.SerializeToString(),
            ),
        ),
        (
            "port_frame_error",
            w.PortFrame(
                call_id=2**64 - 1,
                method="Train",
                kind=w.PortFrame.ERROR,
                status_code=-2,
                message=UNICODE,
            ),
        ),
        ("port_frame_unknown_kind", w.PortFrame(call_id=1, kind=99)),
        ("port_frame_negative_kind", w.PortFrame(kind=-7)),
        ("generate_request_prompt", generate),
        ("generate_request_empty_prompt", w.GenerateRequest(prompt="")),
        (
            "generate_request_chat",
            w.GenerateRequest(
                chat=w.ChatPrompt(
                    messages=[
                        w.ChatMessage(role="system", content="You write Elixir."),
                        w.ChatMessage(role="user", content=UNICODE),
                        w.ChatMessage(),
                    ]
                ),
                params=w.SamplingParams(),
            ),
        ),
        (
            "generate_request_fim_seed_max",
            w.GenerateRequest(
                fim=w.FimPrompt(prefix="def a do\n", suffix="\nend\n"),
                params=w.SamplingParams(seed=2**64 - 1, max_tokens=2**31 - 1),
            ),
        ),
        ("generate_request_empty_fim", w.GenerateRequest(fim=w.FimPrompt())),
        (
            "generate_response",
            w.GenerateResponse(
                text="ok ✓",
                token_ids=[0, 1, -1, 2**31 - 1, -(2**31), 300],
                finish_reason=w.FINISH_REASON_LENGTH,
                usage=w.Usage(
                    prompt_tokens=3,
                    completion_tokens=4,
                    total_tokens=7,
                    time_to_first_token_us=2**40,
                ),
                model="tiny",
            ),
        ),
        ("generate_response_unknown_finish", w.GenerateResponse(finish_reason=17)),
        (
            "embed_response",
            w.EmbedResponse(
                embeddings=[
                    w.Embedding(values=[0.5, -1.25, 3.0e38, 1e-45, -0.0, float("inf"), 0.1]),
                    w.Embedding(),
                    w.Embedding(values=[float("nan"), float("-inf")]),
                ],
                dimensions=384,
                model="all-MiniLM-L6-v2",
            ),
        ),
        (
            "job_event_metrics",
            w.JobEvent(
                job_id="job-1",
                kind=w.JobEvent.METRICS,
                phase="stage1",
                step=-3,
                total_steps=2**62,
                elapsed_ms=1500,
                eta_ms=-1,
                metrics={
                    "loss": 1.5,
                    "": 0.0,
                    "a": -0.0,
                    "ab": 1e-300,
                    "b": float("inf"),
                    "é": 2.5,
                    "z": 1.7976931348623157e308,
                    "learning_rate": 0.0002,
                },
                artifact_path="/tmp/ckpt",
            ),
        ),
        (
            "health_response",
            w.HealthResponse(
                state=w.HealthResponse.READY,
                model=model,
                version="0.1.0",
                uptime_ms=9_000_000_000,
                backends=["transformers", "vllm"],
                device="cuda:0",
                pid=4242,
            ),
        ),
        (
            "health_response_failed",
            w.HealthResponse(state=w.HealthResponse.FAILED, reason="/models/x: no such directory ✗"),
        ),
        (
            "list_models_response",
            w.ListModelsResponse(models=[model, w.ModelInfo(id="other"), w.ModelInfo()]),
        ),
        (
            "train_request",
            w.TrainRequest(
                job_id="t1",
                base_model="tiny",
                dataset_dir="data/ds",
                stage=2,
                output_dir="data/adapters/x",
                config=w.TrainConfig(
                    epochs=3,
                    max_steps=-1,
                    learning_rate=2e-4,
                    batch_size=4,
                    warmup_ratio=0.03125,
                    max_grad_norm=1.0,
                    early_stopping_threshold=-0.0,
                    quantization="nf4",
                    gradient_checkpointing=True,
                    packing=False,
                    regularizer="ewc",
                    regularizer_weight=0.25,
                    seed=2**63,
                    lora=w.LoraConfig(
                        r=16,
                        alpha=32.0,
                        dropout=0.05,
                        target_modules=["q_proj", "v_proj"],
                        train_embeddings=True,
                        embeddings_learning_rate=1e-5,
                    ),
                ),
                resume=True,
                init_adapter="a",
                general_eval_path="g.jsonl",
            ),
        ),
        (
            "evaluate_request",
            w.EvaluateRequest(
                job_id="e1",
                loss_datasets=["a.jsonl", "b.jsonl"],
                benchmarks=["humaneval-ex.jsonl"],
                max_problems=10,
                samples_per_problem=5,
                params=w.SamplingParams(temperature=0.75, seed=42),
            ),
        ),
        (
            "build_dataset_request",
            w.BuildDatasetRequest(job_id="d", inputs=["x", UNICODE], seed=1, eval_files=["e"]),
        ),
        (
            "list_adapters_response",
            w.ListAdaptersResponse(
                adapters=[
                    w.AdapterInfo(
                        name="s1",
                        path="/a",
                        stage=1,
                        active=True,
                        metrics_json='{"loss": 1}',
                    ),
                    w.AdapterInfo(name="s2", merged=True),
                ]
            ),
        ),
        ("cancel_job_response", w.CancelJobResponse(found=True)),
        ("embed_request", w.EmbedRequest(texts=["", "a", UNICODE])),
        # --- the test-only schema ---
        (
            "scalars_max",
            g.Scalars(
                i32=2**31 - 1,
                i64=2**63 - 1,
                u32=2**32 - 1,
                u64=2**64 - 1,
                s32=2**31 - 1,
                s64=2**63 - 1,
                f32=2**32 - 1,
                f64=2**64 - 1,
                sf32=2**31 - 1,
                sf64=2**63 - 1,
                flag=True,
                fl=3.4028234663852886e38,
                db=1.7976931348623157e308,
                str=UNICODE,
                raw=bytes(range(256)),
                color=g.GREEN,
            ),
        ),
        (
            "scalars_min",
            g.Scalars(
                i32=-(2**31),
                i64=-(2**63),
                s32=-(2**31),
                s64=-(2**63),
                sf32=-(2**31),
                sf64=-(2**63),
                fl=-3.4028234663852886e38,
                db=-1.7976931348623157e308,
                color=g.NEGATIVE,
            ),
        ),
        (
            "scalars_minus_one",
            g.Scalars(
                i32=-1,
                i64=-1,
                s32=-1,
                s64=-1,
                sf32=-1,
                sf64=-1,
                fl=-0.0,
                db=-0.0,
                raw=b"\x00",
                str=" ",
            ),
        ),
        (
            "scalars_tiny",
            g.Scalars(fl=1.401298464324817e-45, db=5e-324, u32=1, f32=1, f64=1, s32=1, s64=-2),
        ),
        ("scalars_infinities", g.Scalars(fl=float("inf"), db=float("-inf"))),
        ("scalars_nan", g.Scalars(fl=float("nan"), db=float("nan"))),
        ("scalars_unknown_enum", g.Scalars(color=12345)),
        (
            "repeated_all",
            g.Repeated(
                i32=[0, -1, 2**31 - 1, -(2**31)],
                i64=[0, -1, 2**63 - 1, -(2**63)],
                u32=[0, 2**32 - 1],
                u64=[0, 2**64 - 1],
                s32=[0, -1, 1, -(2**31), 2**31 - 1],
                s64=[0, -1, 1, -(2**63), 2**63 - 1],
                f32=[0, 2**32 - 1],
                f64=[0, 2**64 - 1],
                sf32=[-1, 1],
                sf64=[-1, 1],
                flags=[True, False, True],
                fl=[0.0, -0.0, 1.5, float("inf")],
                db=[0.0, -2.5, 5e-324],
                strs=["", "a", UNICODE],
                raws=[b"", b"\x00\xff"],
                colors=[g.RED, g.COLOR_UNSPECIFIED, g.NEGATIVE, 77],
                unpacked=[1, -1, 0],
                items=[g.Scalars(), g.Scalars(i32=5, str="x"), g.Scalars(color=g.RED)],
            ),
        ),
        ("repeated_empty", g.Repeated()),
        ("optionals_absent", g.Optionals()),
        (
            "optionals_zero",
            g.Optionals(
                i32=0,
                str="",
                color=g.COLOR_UNSPECIFIED,
                db=0.0,
                flag=False,
                raw=b"",
                s64=0,
                fl=0.0,
            ),
        ),
        (
            "optionals_set",
            g.Optionals(
                i32=-5,
                str=UNICODE,
                color=g.NEGATIVE,
                db=-0.0,
                flag=True,
                raw=b"\x01",
                s64=-(2**63),
                fl=2.5,
            ),
        ),
        (
            "maps_all",
            g.Maps(
                by_i32={
                    0: "zero",
                    1: "one",
                    -1: "minus one",
                    2**31 - 1: "max",
                    -(2**31): "min",
                },
                by_i64={0: 0, -1: 1, 2**62: -(2**63), 1: 2**63 - 1},
                by_u32={0: True, 1: False, 2**32 - 1: True},
                by_s32={-1: 1.0, 1: 2.0, 0: 0.5, -(2**31): -0.0},
                by_bool={True: "t", False: ""},
                by_name={
                    "": g.Scalars(),
                    "a": g.Scalars(i32=1),
                    "ab": g.Scalars(str=UNICODE),
                },
                colors={
                    "red": g.RED,
                    "zero": g.COLOR_UNSPECIFIED,
                    "odd": 42,
                    "neg": g.NEGATIVE,
                },
                by_f64={0: b"", 2**64 - 1: b"\xff", 5: b"five"},
                metrics={"a": 1.0, "": float("nan"), "é": -1.0, "z": 0.0},
            ),
        ),
        ("maps_single", g.Maps(metrics={"loss": 0.25})),
        ("choice_number_zero", g.Choice(number=0)),
        ("choice_text", g.Choice(text=UNICODE, label="after")),
        ("choice_scalars_empty", g.Choice(scalars=g.Scalars())),
        ("choice_scalars", g.Choice(scalars=g.Scalars(i64=-9, str="s"), label="l")),
        ("choice_color_zero", g.Choice(color=g.COLOR_UNSPECIFIED)),
        ("choice_color_unknown", g.Choice(color=9)),
        ("choice_raw_empty", g.Choice(raw=b"")),
        (
            "choice_node_tree",
            g.Choice(
                node=g.Choice.Node(
                    label="root",
                    child=g.Choice.Node(label="c", child=g.Choice.Node(label="cc")),
                    children=[
                        g.Choice.Node(label="x"),
                        g.Choice.Node(),
                        g.Choice.Node(children=[g.Choice.Node()]),
                    ],
                )
            ),
        ),
    ]


def raw_vectors() -> list[tuple[str, Descriptor, bytes]]:
    """Bytes another encoder could write: unknown fields, other orders, merges."""
    g = golden_module()
    frame = w.PortFrame(call_id=3, method="Health", kind=w.PortFrame.END).SerializeToString()
    group = tag(103, 3) + tag(1, 0) + varint(5) + tag(2, 3) + ld(3, b"in") + tag(2, 4) + tag(103, 4)
    unknown = b"".join(
        [
            tag(100, 0) + varint(2**64 - 1),
            tag(101, 1) + bytes(8),
            ld(102, b"\x08\x01 any bytes"),
            group,
            tag(104, 5) + bytes(4),
            tag(536_870_911, 0) + varint(1),  # the largest field number
        ]
    )
    token = w.GenerateResponse.DESCRIPTOR.fields_by_name["token_ids"].number
    params_a = w.SamplingParams(max_tokens=5, stop=["a"], seed=1).SerializeToString()
    params_b = w.SamplingParams(temperature=0.5, stop=["b"]).SerializeToString()
    fim_a = w.FimPrompt(prefix="p").SerializeToString()
    fim_b = w.FimPrompt(suffix="s").SerializeToString()
    node = g.Choice.Node
    scalar_fields = g.Scalars.DESCRIPTOR.fields_by_name
    repeated_fields = g.Repeated.DESCRIPTOR.fields_by_name
    return [
        ("unknown_fields_after", w.PortFrame.DESCRIPTOR, frame + unknown),
        ("unknown_fields_before", w.PortFrame.DESCRIPTOR, unknown + frame),
        ("unknown_empty_group", w.PortFrame.DESCRIPTOR, tag(9, 3) + tag(9, 4) + frame),
        (
            "unknown_fields_nested",
            w.GenerateRequest.DESCRIPTOR,
            ld(5, unknown + w.SamplingParams(max_tokens=1).SerializeToString()) + ld(3, ld(1, unknown)),
        ),
        # A known field number with another wire type is an unknown field (upb).
        (
            "wrong_wire_type_skipped",
            w.PortFrame.DESCRIPTOR,
            ld(1, b"x") + tag(2, 0) + varint(1) + frame,
        ),
        (
            "fields_out_of_order",
            w.PortFrame.DESCRIPTOR,
            ld(6, b"m") + ld(2, b"Generate") + tag(1, 0) + varint(9),
        ),
        (
            "last_scalar_wins",
            w.PortFrame.DESCRIPTOR,
            ld(2, b"first") + tag(3, 0) + varint(1) + ld(2, b"second") + tag(3, 0) + varint(2),
        ),
        (
            "last_scalar_zero_wins",
            w.PortFrame.DESCRIPTOR,
            tag(1, 0) + varint(5) + tag(1, 0) + varint(0),
        ),
        (
            "overlong_varint",
            w.PortFrame.DESCRIPTOR,
            tag(1, 0) + b"\x81\x80\x80\x80\x00" + tag(5, 0) + b"\xff\xff\xff\xff\x0f",
        ),
        (
            "int32_from_64_bit_varint",
            w.PortFrame.DESCRIPTOR,
            tag(5, 0) + varint(2**40 + 7),
        ),
        (
            "unpacked_repeated",
            w.GenerateResponse.DESCRIPTOR,
            b"".join(tag(token, 0) + varint(v) for v in [1, -1, 300]),
        ),
        (
            "packed_and_unpacked_mixed",
            w.GenerateResponse.DESCRIPTOR,
            tag(token, 0) + varint(1) + ld(token, varint(2) + varint(3)) + tag(token, 0) + varint(4) + ld(token, b""),
        ),
        (
            "unpacked_floats",
            w.Embedding.DESCRIPTOR,
            tag(1, 5) + struct.pack("<f", 1.5) + tag(1, 5) + struct.pack("<f", -2.0),
        ),
        (
            "submessage_merge",
            w.GenerateRequest.DESCRIPTOR,
            ld(5, params_a) + ld(1, b"m") + ld(5, params_b),
        ),
        (
            "oneof_last_case_wins",
            w.GenerateRequest.DESCRIPTOR,
            ld(2, b"prompt") + ld(4, fim_a),
        ),
        (
            "oneof_message_merge",
            w.GenerateRequest.DESCRIPTOR,
            ld(4, fim_a) + ld(4, fim_b),
        ),
        (
            "oneof_replaced_by_scalar",
            w.GenerateRequest.DESCRIPTOR,
            ld(4, fim_a) + ld(2, b""),
        ),
        ("map_entry_key_only", w.JobEvent.DESCRIPTOR, ld(9, ld(1, b"k"))),
        (
            "map_entry_value_only",
            w.JobEvent.DESCRIPTOR,
            ld(9, tag(2, 1) + struct.pack("<d", 2.0)),
        ),
        ("map_entry_empty", w.JobEvent.DESCRIPTOR, ld(9, b"")),
        (
            "map_entry_reversed",
            w.JobEvent.DESCRIPTOR,
            ld(9, tag(2, 1) + struct.pack("<d", 3.0) + ld(1, b"k")),
        ),
        (
            "map_duplicate_key_last_wins",
            w.JobEvent.DESCRIPTOR,
            ld(9, ld(1, b"k") + tag(2, 1) + struct.pack("<d", 1.0))
            + ld(9, ld(1, b"k") + tag(2, 1) + struct.pack("<d", 2.0)),
        ),
        (
            "map_entry_unknown_field",
            w.JobEvent.DESCRIPTOR,
            ld(
                9,
                ld(1, b"k") + tag(3, 0) + varint(1) + tag(2, 1) + struct.pack("<d", 4.0),
            ),
        ),
        # upb keeps an entry holding an unknown field as an unknown field of
        # the message, so it is not in the map.
        (
            "map_entry_wrong_wire_type",
            w.JobEvent.DESCRIPTOR,
            ld(9, tag(1, 0) + varint(1) + ld(2, b"")),
        ),
        (
            "map_entry_unknown_group",
            w.JobEvent.DESCRIPTOR,
            ld(9, ld(1, b"k") + tag(3, 3) + tag(3, 4)),
        ),
        (
            "map_message_value_missing",
            g.Maps.DESCRIPTOR,
            ld(6, ld(1, b"x")) + ld(7, ld(1, b"c")),
        ),
        (
            "map_message_value_merged",
            g.Maps.DESCRIPTOR,
            ld(6, ld(1, b"x") + ld(2, varint(8) + varint(1)) + ld(2, ld(14, b"s"))),
        ),
        (
            "bool_from_large_varint",
            g.Scalars.DESCRIPTOR,
            tag(scalar_fields["flag"].number, 0) + varint(2**40),
        ),
        (
            "uint32_from_64_bit_varint",
            g.Scalars.DESCRIPTOR,
            tag(3, 0) + varint(2**35 + 5),
        ),
        (
            "sint32_from_64_bit_varint",
            g.Scalars.DESCRIPTOR,
            tag(5, 0) + varint(2**33 + zigzag(-3)),
        ),
        (
            "unpacked_every_packable_type",
            g.Repeated.DESCRIPTOR,
            b"".join(
                [
                    tag(repeated_fields["s64"].number, 0) + varint(zigzag(-5)),
                    tag(repeated_fields["f32"].number, 5) + struct.pack("<I", 7),
                    tag(repeated_fields["sf64"].number, 1) + struct.pack("<q", -7),
                    tag(repeated_fields["flags"].number, 0) + varint(1),
                    tag(repeated_fields["db"].number, 1) + struct.pack("<d", 0.5),
                    tag(repeated_fields["colors"].number, 0) + varint(-1),
                ]
            ),
        ),
        (
            "packed_for_unpacked_field",
            g.Repeated.DESCRIPTOR,
            ld(repeated_fields["unpacked"].number, varint(1) + varint(2)),
        ),
        (
            "repeated_message_no_merge",
            g.Repeated.DESCRIPTOR,
            ld(18, varint(8) + varint(1)) + ld(18, varint(8) + varint(2)),
        ),
        (
            "recursive_merge",
            g.Choice.DESCRIPTOR,
            ld(
                6,
                ld(2, node(label="a", children=[node(label="x")]).SerializeToString()),
            )
            + ld(
                6,
                ld(
                    2,
                    node(child=node(label="deep"), children=[node(label="y")]).SerializeToString(),
                ),
            ),
        ),
        # 100 levels of sub-messages under the root are allowed, 101 are not.
        ("deep_nesting_at_the_limit", g.Choice.DESCRIPTOR, ld(6, nested_nodes(99))),
    ]


def nested_nodes(depth: int) -> bytes:
    """A Choice.Node chain `depth` levels deep."""
    data = b""
    for _ in range(depth):
        data = ld(2, data)
    return data


def invalid_vectors() -> list[tuple[str, Descriptor, bytes]]:
    """Bytes that Python's protobuf refuses to parse."""
    g = golden_module()
    return [
        ("truncated_varint", w.PortFrame.DESCRIPTOR, b"\x08\xff"),
        ("truncated_key", w.PortFrame.DESCRIPTOR, b"\x80"),
        ("varint_too_long", w.PortFrame.DESCRIPTOR, b"\x08" + b"\xff" * 10 + b"\x01"),
        ("length_past_end", w.PortFrame.DESCRIPTOR, b"\x12\x05abc"),
        (
            "length_past_end_huge",
            w.PortFrame.DESCRIPTOR,
            b"\x22" + varint(2**62) + b"x",
        ),
        ("wire_type_6", w.PortFrame.DESCRIPTOR, b"\x0e"),
        ("wire_type_7", w.PortFrame.DESCRIPTOR, b"\x0f\x00"),
        ("field_number_zero", w.PortFrame.DESCRIPTOR, b"\x00\x01"),
        ("invalid_utf8", w.PortFrame.DESCRIPTOR, b"\x12\x01\xff"),
        (
            "invalid_utf8_surrogate",
            w.PortFrame.DESCRIPTOR,
            ld(2, "\ud800".encode("utf-8", "surrogatepass")),
        ),
        ("invalid_utf8_overlong", w.PortFrame.DESCRIPTOR, ld(2, b"\xc0\xaf")),
        (
            "invalid_utf8_repeated",
            w.EmbedRequest.DESCRIPTOR,
            ld(1, b"ok") + ld(1, b"\xe2\x82"),
        ),
        ("invalid_utf8_map_key", w.JobEvent.DESCRIPTOR, ld(9, ld(1, b"\xff"))),
        ("invalid_utf8_nested", w.GenerateRequest.DESCRIPTOR, ld(4, ld(1, b"\x80"))),
        ("stray_end_group", w.PortFrame.DESCRIPTOR, tag(9, 4)),
        (
            "unterminated_group",
            w.PortFrame.DESCRIPTOR,
            tag(9, 3) + tag(1, 0) + varint(1),
        ),
        ("mismatched_end_group", w.PortFrame.DESCRIPTOR, tag(9, 3) + tag(10, 4)),
        ("truncated_fixed64", w.PortFrame.DESCRIPTOR, tag(9, 1) + b"\x01\x02"),
        ("truncated_fixed32", w.PortFrame.DESCRIPTOR, tag(9, 5) + b"\x01"),
        ("truncated_double", w.JobEvent.DESCRIPTOR, ld(9, tag(2, 1) + b"\x00")),
        (
            "truncated_inside_submessage",
            w.GenerateRequest.DESCRIPTOR,
            ld(5, b"\x08\xff"),
        ),
        ("truncated_packed", w.GenerateResponse.DESCRIPTOR, ld(2, b"\x01\xff")),
        (
            "truncated_packed_floats",
            w.Embedding.DESCRIPTOR,
            ld(1, b"\x00\x00\x80\x3f\x00"),
        ),
        ("deep_nesting_past_the_limit", g.Choice.DESCRIPTOR, ld(6, nested_nodes(100))),
    ]


def build() -> dict[str, Any]:
    vectors = [vector_from_message(name, msg) for name, msg in built_messages()]
    vectors += [vector_from_bytes(name, desc, data) for name, desc, data in raw_vectors()]
    names = [v["name"] for v in vectors]
    assert len(names) == len(set(names)), "duplicate vector names"
    invalid = []
    for name, desc, data in invalid_vectors():
        try:
            message_class(desc.full_name).FromString(data)
        except pb_message.DecodeError:
            invalid.append({"name": name, "type": desc.full_name, "hex": data.hex()})
        else:
            raise AssertionError(f"invalid vector {name}: Python accepted {data.hex()}")
    return {
        "about": "Protobuf golden vectors made by scripts/make_golden_vectors.py; do not edit.",
        "vectors": vectors,
        "invalid": invalid,
    }


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def write(path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(render(build()), encoding="utf-8")
    tmp.replace(path)


def check_decode(encoded_path: Path) -> list[str]:
    """Parses the Elixir encodings in `encoded_path` ([{name, hex}]) with Python.

    Returns one line per disagreement: Python must decode each to the vector's
    `value`, and write it back as the same bytes.
    """
    vectors = {v["name"]: v for v in json.loads(VECTORS_PATH.read_text(encoding="utf-8"))["vectors"]}
    problems = []
    encoded = json.loads(encoded_path.read_text(encoding="utf-8"))
    missing = sorted(set(vectors) - {e["name"] for e in encoded})
    if missing:
        problems.append(f"no Elixir encoding for: {', '.join(missing)}")
    for entry in encoded:
        vector = vectors[entry["name"]]
        data = bytes.fromhex(entry["hex"])
        try:
            parsed = message_class(vector["type"]).FromString(data)
        except pb_message.DecodeError as error:
            problems.append(f"{entry['name']}: Python cannot parse Elixir's {entry['hex']}: {error}")
            continue
        if describe(parsed) != vector["value"]:
            problems.append(f"{entry['name']}: Python decoded {describe(parsed)}, expected {vector['value']}")
        again = parsed.SerializeToString(deterministic=True).hex()
        if again != entry["hex"]:
            problems.append(f"{entry['name']}: Elixir wrote {entry['hex']}, Python writes {again}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--check-decode",
        type=Path,
        metavar="FILE",
        help="JSON list of {name, hex} from Elixir",
    )
    args = parser.parse_args()
    if args.check_decode:
        problems = check_decode(args.check_decode)
        for line in problems:
            print(line, file=sys.stderr)
        print(f"{'FAILED' if problems else 'ok'}: checked {args.check_decode}")
        sys.exit(1 if problems else 0)
    write(VECTORS_PATH)
    print(f"wrote {VECTORS_PATH.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
