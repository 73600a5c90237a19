"""Configuration from the environment: defaults, validation messages, CLI exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from python_worker import config
from python_worker.tests.procs import REPO, worker_env


def test_defaults() -> None:
    cfg = config.load({})
    assert cfg.model == str(REPO / "models" / "tiny-code")
    assert (cfg.grpc_host, cfg.grpc_port) == ("127.0.0.1", 50051)
    assert cfg.data_dir == REPO / "data"
    assert cfg.max_frame_bytes == 64 * 1024 * 1024
    assert (cfg.device, cfg.backend, cfg.dtype, cfg.worker_token) == ("auto", "transformers", "auto", None)
    assert cfg.loopback


def test_overrides_win_over_the_environment() -> None:
    cfg = config.load({"GRPC_PORT": "1234", "MODEL": "a"}, {"GRPC_PORT": "0", "MODEL": None})
    assert cfg.grpc_port == 0 and cfg.model == "a"
    assert config.load({"MODEL": "none"}).model is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GRPC_PORT": "abc"}, "GRPC_PORT must be an integer 0..65535, got 'abc'"),
        ({"GRPC_PORT": "70000"}, "GRPC_PORT must be an integer 0..65535, got '70000'"),
        ({"MAX_FRAME_BYTES": "-1"}, "MAX_FRAME_BYTES must be an integer >= 1024"),
        ({"DEVICE": "gpu"}, "DEVICE must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
        ({"BACKEND": "onnx"}, "BACKEND must be one of transformers, vllm, got 'onnx'"),
        ({"DTYPE": "int8"}, "DTYPE must be one of"),
        ({"MODEL": ""}, "MODEL must not be empty"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of"),
        ({"WORKER_TOKEN": "a b"}, "WORKER_TOKEN must not contain whitespace"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(config.ConfigError) as raised:
        config.load(env)
    assert message in str(raised.value)


def test_non_loopback_needs_a_token() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        config.load({"GRPC_HOST": host}).require_token_for_bind()
    with pytest.raises(config.ConfigError, match="WORKER_TOKEN"):
        config.load({"GRPC_HOST": "0.0.0.0"}).require_token_for_bind()
    config.load({"GRPC_HOST": "0.0.0.0", "WORKER_TOKEN": "t"}).require_token_for_bind()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["serve"], {"GRPC_PORT": "abc"}, "GRPC_PORT must be an integer 0..65535, got 'abc'"),
        (["port", "--no-grpc", "--max-frame-bytes", "lots"], {}, "MAX_FRAME_BYTES must be an integer"),
        (["serve", "--device", "gpu"], {}, "DEVICE must be"),
    ],
)
def test_cli_exits_2_on_bad_config(args: list[str], env: dict[str, str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "python_worker", *args],
        cwd=REPO,
        env=worker_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
