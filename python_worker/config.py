"""Worker configuration: environment variables, overridable by command-line flags.

| variable        | default                       | meaning                                          |
| --------------- | ----------------------------- | ------------------------------------------------ |
| MODEL           | <repo>/models/tiny-code       | model loaded at startup (dir or hub id); "none" = no default model |
| BACKEND         | transformers                  | generation backend: transformers or vllm         |
| DEVICE          | auto                          | auto, cpu, cuda, cuda:N or mps                   |
| DTYPE           | auto                          | auto, float32, bfloat16 or float16               |
| GRPC_HOST       | 127.0.0.1                     | gRPC bind address; non-loopback needs WORKER_TOKEN |
| GRPC_PORT       | 50051                         | gRPC port; 0 picks a free one (logged to stderr) |
| WORKER_TOKEN    | (unset)                       | bearer token every gRPC call must present         |
| MAX_FRAME_BYTES | 67108864 (64 MiB)             | largest port frame accepted                      |
| DATA_DIR        | <repo>/data                   | where models, datasets and adapters live         |
| LOG_LEVEL       | INFO                          | DEBUG, INFO, WARNING or ERROR                     |
| MAX_BATCH_SIZE  | 32                            | requests decoded together in one batch (transformers) |
| MAX_WAITING_REQUESTS | 64                       | requests queued for a batch slot; more get RESOURCE_EXHAUSTED (HTTP 429) |
| QDRANT_URL      | (unset)                       | a Qdrant server for the memory store; unset = embedded under DATA_DIR/qdrant |
| QDRANT_API_KEY  | (unset)                       | API key sent to the QDRANT_URL server             |

An invalid value raises ConfigError naming the variable; the CLI exits with 2.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT / "data"
# The tiny code base shipped in the repository (scripts/pretrain_tiny_model.py).
DEFAULT_MODEL = str(REPO_ROOT / "models" / "tiny-code")
NO_MODEL = "none"

BACKENDS = ("transformers", "vllm")
DTYPES = ("auto", "float32", "bfloat16", "float16")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the variable."""


@dataclass(frozen=True)
class Config:
    model: str | None
    backend: str
    device: str
    dtype: str
    grpc_host: str
    grpc_port: int
    worker_token: str | None
    max_frame_bytes: int
    data_dir: Path
    log_level: str
    max_batch_size: int = 32
    max_waiting_requests: int = 64
    qdrant_url: str = ""
    qdrant_api_key: str = ""

    @property
    def loopback(self) -> bool:
        return is_loopback(self.grpc_host)

    def require_token_for_bind(self) -> None:
        """Refuse a non-loopback gRPC bind without a token (anyone could drive the GPU)."""
        if not self.loopback and not self.worker_token:
            raise ConfigError(
                f"GRPC_HOST={self.grpc_host} is not a loopback address; set WORKER_TOKEN "
                "so clients must send 'authorization: Bearer <token>', or bind 127.0.0.1"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname other than localhost may resolve anywhere


def _int(name: str, raw: str, low: int, high: int | None, what: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise ConfigError(f"{name} must be {what}, got {raw!r}")
    return value


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _url(name: str, raw: str) -> str:
    raw = raw.strip()
    if raw and not re.match(r"^https?://[^\s/]+", raw):
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {raw!r}")
    return raw


def batch_limits(env: Mapping[str, str]) -> tuple[int, int]:
    """(MAX_BATCH_SIZE, MAX_WAITING_REQUESTS), validated; the transformers backend reads them."""
    return (
        _int("MAX_BATCH_SIZE", env.get("MAX_BATCH_SIZE", "32"), 1, None, "an integer >= 1"),
        _int("MAX_WAITING_REQUESTS", env.get("MAX_WAITING_REQUESTS", "64"), 0, None, "an integer >= 0"),
    )


def load(env: Mapping[str, str], overrides: Mapping[str, str | None] | None = None) -> Config:
    """Build a Config from environment variables; overrides (CLI flags, by variable name) win."""
    merged = dict(env)
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})

    model = merged.get("MODEL", DEFAULT_MODEL)
    if not model.strip():
        raise ConfigError(f"MODEL must not be empty (use MODEL={NO_MODEL} for no default model)")

    device = merged.get("DEVICE", "auto")
    if not DEVICE_PATTERN.match(device):
        raise ConfigError(f"DEVICE must be auto, cpu, cuda, cuda:N or mps, got {device!r}")

    host = merged.get("GRPC_HOST", "127.0.0.1")
    if not host.strip():
        raise ConfigError("GRPC_HOST must not be empty")

    token = merged.get("WORKER_TOKEN") or None
    if token is not None and (token != token.strip() or any(c.isspace() for c in token)):
        raise ConfigError("WORKER_TOKEN must not contain whitespace")

    max_batch_size, max_waiting_requests = batch_limits(merged)
    return Config(
        model=None if model == NO_MODEL else model,
        backend=_choice("BACKEND", merged.get("BACKEND", "transformers"), BACKENDS),
        device=device,
        dtype=_choice("DTYPE", merged.get("DTYPE", "auto"), DTYPES),
        grpc_host=host,
        grpc_port=_int("GRPC_PORT", merged.get("GRPC_PORT", "50051"), 0, 65535, "an integer 0..65535"),
        worker_token=token,
        max_frame_bytes=_int(
            "MAX_FRAME_BYTES",
            merged.get("MAX_FRAME_BYTES", str(64 * 1024 * 1024)),
            1024,
            None,
            "an integer >= 1024 (bytes)",
        ),
        data_dir=Path(merged.get("DATA_DIR", str(DEFAULT_DATA_DIR))).expanduser(),
        log_level=_choice("LOG_LEVEL", merged.get("LOG_LEVEL", "INFO").upper(), LOG_LEVELS),
        max_batch_size=max_batch_size,
        max_waiting_requests=max_waiting_requests,
        qdrant_url=_url("QDRANT_URL", merged.get("QDRANT_URL", "")),
        qdrant_api_key=merged.get("QDRANT_API_KEY", "").strip(),
    )
