"""Training settings and request validation: fast, no model is ever loaded."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from python_worker.proto import worker_pb2
from python_worker.tests.test_training_fixtures import write_dataset
from python_worker.training import model as model_mod
from python_worker.training.config import (
    DEFAULT_TARGETS,
    TrainSettings,
    describe,
    from_dict,
    load_file,
    resolved,
    validate,
)
from python_worker.training.errors import InvalidRequest
from python_worker.training.job import TrainJob, validate_job
from python_worker.training.rpc import (
    evaluate_events,
    settings_from_proto,
    train_events,
)

TRAINING = Path(__file__).resolve().parents[1] / "training"


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("cfg")
    return {"model": tiny_model, "data": write_dataset(root / "ds"), "root": root}


@pytest.fixture(autouse=True)
def no_model_loads(monkeypatch):
    """Validation must finish before any model loads: make loading an error."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded during validation")

    monkeypatch.setattr(model_mod, "load_base", refuse)
    monkeypatch.setattr(model_mod, "load_for_eval", refuse)


def request(paths, tmp_path, **config) -> worker_pb2.TrainRequest:
    lora = config.pop("lora", None)
    req = worker_pb2.TrainRequest(
        job_id="t",
        base_model=str(paths["model"]),
        dataset_dir=str(paths["data"]),
        stage=1,
        output_dir=str(tmp_path / "out"),
        config=worker_pb2.TrainConfig(**config),
    )
    if lora is not None:
        req.config.lora.CopyFrom(worker_pb2.LoraConfig(**lora))
    return req


def test_defaults_follow_the_seed_projects():
    s = resolved(TrainSettings(), stage=1)
    assert (s.lora.r, s.lora.alpha, s.lora.dropout) == (32, 64.0, 0.05)
    assert tuple(s.lora.target_modules) == DEFAULT_TARGETS
    assert s.quantization == "nf4"
    assert s.regularizer == "none"
    validate(s, 1, 2048)
    assert resolved(TrainSettings(), stage=3).curriculum_order is True
    assert all(help_text for _, _, help_text in describe())


def test_stage_settings_have_no_second_home_in_the_worker():
    # Stage defaults live in elixir/config/curriculum.exs alone (the host's
    # config test has the real worker validate every stage of it).
    assert not list(TRAINING.rglob("*.json")), "per-stage settings belong in elixir/config/curriculum.exs"


def test_a_settings_file_loads_and_validates(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text('{"epochs": 2, "save_minutes": 2.5, "lora": {"r": 16}}')
    settings = resolved(load_file(path), 2)
    validate(settings, 2, 2048)
    assert (settings.epochs, settings.save_minutes, settings.lora.r) == (2, 2.5, 16)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"learning_rate": -1}, "config.learning_rate must be > 0, got -1"),
        ({"batch_size": -2}, "config.batch_size must be >= 1, got -2"),
        ({"warmup_ratio": 1.5}, "config.warmup_ratio must be in [0, 1), got 1.5"),
        (
            {"max_seq_length": 4096},
            "config.max_seq_length must be <= the model's context length",
        ),
        (
            {"quantization": "int3"},
            "config.quantization must be one of ['nf4', 'none']",
        ),
        (
            {"regularizer": "dropout"},
            "config.regularizer must be one of ['none', 'l2', 'ewc']",
        ),
        ({"regularizer_weight": -0.5}, "config.regularizer_weight must be >= 0"),
        (
            {"early_stopping_patience": -3},
            "config.early_stopping_patience must be >= 1, or -1",
        ),
        ({"max_grad_norm": -1}, "config.max_grad_norm must be >= 0"),
        ({"lora": {"r": -4}}, "config.lora.r must be >= 1, got -4"),
        ({"lora": {"dropout": 1.0}}, "config.lora.dropout must be in [0, 1)"),
        ({"lora": {"alpha": -1}}, "config.lora.alpha must be > 0"),
        ({"save_minutes": -0.5}, "config.save_minutes must be > 0, got -0.5"),
    ],
)
def test_invalid_hyperparameters_name_the_field(paths, tmp_path, config, message):
    with pytest.raises(InvalidRequest) as err:
        train_events(request(paths, tmp_path, **config), threading.Event())
    assert message in str(err.value)


def test_missing_paths_name_the_field(paths, tmp_path):
    cases = [
        ({"base_model": str(tmp_path / "nope")}, "base_model: no model at"),
        ({"dataset_dir": str(tmp_path / "nope")}, "dataset_dir: "),
        ({"stage": 4}, "stage must be 1, 2 or 3, got 4"),
        ({"init_adapter": str(tmp_path)}, "init_adapter: "),
        ({"general_eval_path": str(tmp_path / "missing.jsonl")}, "general_eval_path: "),
        ({"output_dir": ""}, "output_dir is required"),
    ]
    for fields, message in cases:
        req = request(paths, tmp_path)
        for key, value in fields.items():
            setattr(req, key, value)
        with pytest.raises(InvalidRequest) as err:
            train_events(req, threading.Event())
        assert message in str(err.value), (fields, str(err.value))


def test_missing_stage_split_is_invalid(paths, tmp_path):
    empty = tmp_path / "empty_ds"
    (empty / "stage1").mkdir(parents=True)
    req = request(paths, tmp_path)
    req.dataset_dir = str(empty)
    with pytest.raises(InvalidRequest, match=r"stage1/train.jsonl does not exist"):
        train_events(req, threading.Event())


def test_embeddings_are_a_stage_one_option(paths, tmp_path):
    req = request(paths, tmp_path, lora={"train_embeddings": True})
    req.stage = 2
    with pytest.raises(InvalidRequest, match="config.lora.train_embeddings is a stage-1 option"):
        train_events(req, threading.Event())


def test_ewc_needs_general_code(paths, tmp_path):
    no_replay = tmp_path / "ds"
    (no_replay / "stage3").mkdir(parents=True)
    (no_replay / "stage3" / "train.jsonl").write_text((paths["data"] / "stage3" / "train.jsonl").read_text())
    req = request(paths, tmp_path, regularizer="ewc")
    req.dataset_dir, req.stage = str(no_replay), 3
    with pytest.raises(InvalidRequest, match="config.regularizer 'ewc' estimates its Fisher information"):
        train_events(req, threading.Event())
    req.general_eval_path = str(paths["data"] / "general.jsonl")
    train_events(req, threading.Event()).close()  # valid now; never started


def test_existing_checkpoints_need_resume(paths, tmp_path):
    ckpt = tmp_path / "out" / "checkpoints" / "checkpoint-3"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    (ckpt / "adapter_model.safetensors").write_text("")
    with pytest.raises(InvalidRequest, match="already holds checkpoints; set resume"):
        train_events(request(paths, tmp_path), threading.Event())


def test_unknown_config_keys_are_rejected(tmp_path):
    with pytest.raises(InvalidRequest, match=r"config.learning_rat is not a training setting"):
        from_dict({"learning_rat": 1e-4})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        load_file(bad)


def test_proto_zero_means_default_and_floats_round_trip():
    s = settings_from_proto(worker_pb2.TrainConfig(learning_rate=1e-4, warmup_ratio=0.05))
    assert s.learning_rate == 1e-4
    assert s.warmup_ratio == 0.05  # float32 on the wire, exact after rounding back
    assert s.batch_size == TrainSettings().batch_size
    assert s.lora.r == 32
    s = settings_from_proto(worker_pb2.TrainConfig(lora=worker_pb2.LoraConfig(r=8, target_modules=["q_proj"])))
    assert (s.lora.r, s.lora.alpha, s.lora.target_modules) == (8, 64.0, ["q_proj"])


def test_save_minutes_travels_and_is_validated_in_config_files():
    assert TrainSettings().save_minutes == 10.0
    assert settings_from_proto(worker_pb2.TrainConfig()).save_minutes == 10.0  # proto3 zero: the default
    assert settings_from_proto(worker_pb2.TrainConfig(save_minutes=0.02)).save_minutes == 0.02
    for value, rule in ((0, "> 0"), (float("inf"), "a finite number"), ("ten", "a finite number")):
        with pytest.raises(InvalidRequest, match=rf"config\.save_minutes must be {rule}, got"):
            validate(resolved(from_dict({"save_minutes": value}), 1), 1)


def test_validated_job_is_resolved(paths, tmp_path):
    settings = TrainSettings(regularizer="l2")
    out = str(tmp_path / "o")
    job = validate_job(TrainJob(str(paths["model"]), str(paths["data"]), 1, out, settings=settings))
    assert job.settings.regularizer_weight == 0.1
    assert job.settings.lora.embeddings_learning_rate == pytest.approx(2e-5)


def test_evaluate_validation(paths, tmp_path):
    ok = str(paths["data"] / "stage1" / "eval.jsonl")
    cases = [
        (worker_pb2.EvaluateRequest(model=str(paths["model"]), benchmarks=["x.jsonl"]),
         "problems: 'x.jsonl' is neither a shipped set"),
        (worker_pb2.EvaluateRequest(model=str(paths["model"])), "loss_datasets: give at least one"),
        (worker_pb2.EvaluateRequest(model=str(tmp_path / "m"), loss_datasets=[ok]), "model: no model"),
        (worker_pb2.EvaluateRequest(model=str(paths["model"]), loss_datasets=[ok, "/nope.jsonl"]),
         "loss_datasets[1]: /nope.jsonl does not exist"),
        (worker_pb2.EvaluateRequest(model=str(paths["model"]), adapter=str(tmp_path), loss_datasets=[ok]),
         "adapter: "),
        (worker_pb2.EvaluateRequest(model=str(paths["model"]), loss_datasets=[ok], max_loss_tokens=-2),
         "max_loss_tokens must be -1 (all), 0 (default) or positive, got -2"),
    ]  # fmt: skip
    for req, message in cases:
        with pytest.raises(InvalidRequest) as err:
            evaluate_events(req, threading.Event())
        assert message in str(err.value)


def test_cli_rejects_invalid_config_with_exit_2(paths, tmp_path, capsys):
    from python_worker.training.__main__ import main

    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"learning_rate": -1}))
    code = main(
        ["--base-model", str(paths["model"]), "--dataset", str(paths["data"]), "--stage", "1",
         "--out", str(tmp_path / "o"), "--config", str(cfg)]
    )  # fmt: skip
    assert code == 2
    assert "config.learning_rate must be > 0, got -1" in capsys.readouterr().err


def test_stage_three_keeps_the_book_order(tmp_path):
    from python_worker.training.model import Placement
    from python_worker.training.trainer import sft_config

    cpu = Placement("cpu", __import__("torch").float32)
    book = sft_config(resolved(TrainSettings(), 3), tmp_path, cpu, has_eval=True)
    code = sft_config(resolved(TrainSettings(), 1), tmp_path, cpu, has_eval=False)
    assert book.train_sampling_strategy == "sequential"
    assert code.train_sampling_strategy == "random" and code.eval_strategy == "no"
    assert book.lr_scheduler_type == "cosine" and book.max_grad_norm == 0.3


def test_explicit_zero_warmup_and_dropout_are_kept_absent_ones_default():
    explicit = worker_pb2.TrainConfig(warmup_ratio=0.0, lora=worker_pb2.LoraConfig(dropout=0.0))
    settings = settings_from_proto(explicit)
    assert settings.warmup_ratio == 0.0
    assert settings.lora.dropout == 0.0

    defaults = settings_from_proto(worker_pb2.TrainConfig(lora=worker_pb2.LoraConfig(r=8)))
    assert defaults.warmup_ratio == TrainSettings().warmup_ratio > 0
    assert defaults.lora.dropout == TrainSettings().lora.dropout > 0
    assert defaults.lora.r == 8
