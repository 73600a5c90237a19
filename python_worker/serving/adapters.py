"""Trained LoRA adapters as served models: the registry, loading, blue-green activation.

Training writes each stage's adapter to `DATA_DIR/adapters/RUN/stageN/`
(`adapter_config.json`, `adapter_model.safetensors`, the worker's
`metrics.json`); the host records its gate verdicts in `RUN/run.json`. An
adapter's name is its path under the adapters root ("RUN/stageN"); once
loaded on a base model it is served as the model id "<base id>:<name>", as
vLLM's `--lora-modules` does.

Activation makes an adapter the default for the base model's own id, blue-green:

1. load it beside the live one (the live one keeps serving meanwhile);
2. smoke-test it: a short greedy generation on fixed Elixir prompts must
   finish; each prompt plus its completion is checked with Elixir's own parser
   (`Code.string_to_quoted`, in an `elixir` subprocess with a timeout);
3. switch: one assignment on the event loop, so new requests get the new
   adapter while requests in flight keep the adapter they resolved at start;
4. keep the previous adapter loaded, so rollback is a switch, not a load.

A failed load or smoke test changes nothing that serves and says why.

Parse rule (`SMOKE_REQUIRE_PARSE`: auto, true or false; default auto): with
auto, parsing is required unless the base model has fewer than
`TINY_MODEL_PARAMETERS` parameters, since the random tiny test model cannot
write Elixir; it only has to produce tokens. The parse result is always
recorded. Adapters once loaded stay loaded for the worker's lifetime (LoRA
weights are small, and a stream may still be using one).

The active and previous names are kept in `DATA_DIR/adapters/active.json`
(written to a temporary file and renamed), and a starting worker loads both
again before it reports ready, so a restart or a killed worker comes back
serving the same adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_worker.errors import WorkerError, failed_precondition, invalid_argument, not_found
from python_worker.serving.base import Backend, FinishReason, ModelInfo, SamplingOptions, TextPrompt
from python_worker.threads import run_in_thread

log = logging.getLogger(__name__)

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
STATE_FILE = "active.json"
# Below this many parameters a base model is a test model that cannot write Elixir.
TINY_MODEL_PARAMETERS = 10_000_000
SMOKE_MAX_TOKENS = 64
PARSE_TIMEOUT_S = 60.0
# Elixir openings that do not parse on their own: a completion passes when the
# prompt plus some whole-line prefix of it parses, i.e. the model closed the
# blocks it was given (what follows may be cut by max_tokens).
SMOKE_PROMPTS = (
    "defmodule Greeter do\n  def hello(name) do\n",
    'defmodule MathUtil do\n  @doc "Adds two numbers."\n  def add(a, b),',
    "[1, 2, 3]\n|> Enum.map(fn x ->",
)


@dataclass
class SmokeResult:
    generated: bool
    parsed: int
    prompts: int
    require_parse: bool
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.generated and (not self.require_parse or self.parsed == self.prompts)


@dataclass
class AdapterRecord:
    """One adapter directory under the root, as ListAdapters reports it."""

    name: str
    path: Path
    run: str
    stage: int
    base_model: str
    rank: int
    created_at: str
    metrics_json: str = ""
    gate_passed: bool | None = None
    promoted: bool = False
    gate_json: str = ""


@dataclass
class AdapterState:
    """The adapters loaded on one base model, and which serves its own id."""

    loaded: set[str] = field(default_factory=set)
    active: str = ""
    previous: str = ""


# -- the registry -----------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _stage_number(part: str) -> int:
    digits = part.removeprefix("stage")
    return int(digits) if part.startswith("stage") and digits.isdigit() else 0


def scan(root: Path) -> list[AdapterRecord]:
    """Every adapter under `root` (a directory with adapter_config.json, at most
    three levels down, outside checkpoint-* directories), sorted by name."""
    if not root.is_dir():
        return []
    records = []
    for config_path in sorted(root.rglob(CONFIG_FILE)):
        relative = config_path.parent.relative_to(root)
        if len(relative.parts) > 3 or any(p.startswith("checkpoint-") for p in relative.parts):
            continue
        records.append(read_record(root, relative.as_posix()))
    return records


def read_record(root: Path, name: str) -> AdapterRecord:
    path = root / name
    config = _read_json(path / CONFIG_FILE) or {}
    parts = Path(name).parts
    run = parts[0] if len(parts) > 1 else ""
    stage = _stage_number(parts[-1])
    metrics = path / "metrics.json"
    record = AdapterRecord(
        name=name,
        path=path,
        run=run,
        stage=stage,
        base_model=str(config.get("base_model_name_or_path") or ""),
        rank=int(config.get("r") or 0),
        created_at=dt.datetime.fromtimestamp((path / CONFIG_FILE).stat().st_mtime, dt.UTC).isoformat(),
        metrics_json=metrics.read_text() if metrics.is_file() else "",
    )
    run_record = _read_json(root / run / "run.json") if run else None
    if isinstance(run_record, dict):
        for judged in run_record.get("stages") or []:
            if isinstance(judged, dict) and judged.get("stage") == stage and isinstance(judged.get("passed"), bool):
                record.gate_passed = judged["passed"]
                record.gate_json = json.dumps(judged, sort_keys=True)
        record.promoted = stage > 0 and run_record.get("promoted_stage") == stage
    return record


def adapter_name(requested: str, base: ModelInfo) -> str:
    """The registry name from what a client sent: "RUN/stageN", or the model id
    "<base id>:RUN/stageN" (the base named by id, path or directory name)."""
    for prefix in (base.id, base.path, Path(base.path).name):
        if prefix and requested.startswith(prefix + ":"):
            return requested[len(prefix) + 1 :]
    return requested


def check_name(root: Path, name: str) -> Path:
    """The adapter directory of `name`; it must lie inside the root and hold a config."""
    if not name or name.startswith("/") or ".." in Path(name).parts:
        raise invalid_argument(f"adapter name must be a path under {root} like RUN/stage1, got {name!r}")
    path = root / name
    if not (path / CONFIG_FILE).is_file():
        known = ", ".join(r.name for r in scan(root)) or "none"
        raise not_found(f"adapter {name} not found: {path / CONFIG_FILE} does not exist (adapters: {known})")
    return path


def same_base(declared: str, base: ModelInfo) -> bool:
    """Whether an adapter's base_model_name_or_path names the loaded base model:
    the same string or directory, or the same final path component (a model
    directory copied elsewhere, or a hub id checked out under its own name)."""
    if not declared:
        return False
    if declared in (base.id, base.path):
        return True
    with contextlib.suppress(OSError):
        if Path(declared).expanduser().resolve() == Path(base.path).expanduser().resolve():
            return True
    return Path(declared.rstrip("/")).name == Path(base.path.rstrip("/")).name


def check_adapter(path: Path, base: ModelInfo) -> None:
    """Refuse an adapter for another base model or with unreadable weights, before
    anything is loaded (so a bad adapter never touches the serving model)."""
    config = _read_json(path / CONFIG_FILE)
    if not isinstance(config, dict):
        raise failed_precondition(f"adapter {path}: {CONFIG_FILE} is not a JSON object")
    if config.get("peft_type", "LORA") != "LORA":
        raise failed_precondition(f"adapter {path} is {config.get('peft_type')}, only LoRA adapters are served")
    declared = str(config.get("base_model_name_or_path") or "")
    if not same_base(declared, base):
        raise failed_precondition(
            f"adapter {path} was trained on base model {declared or '(unrecorded)'}, "
            f"but this worker serves {base.path}; load that base model to serve it"
        )
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise failed_precondition(f"adapter {path} has no {WEIGHTS_FILE}")
    from safetensors import safe_open

    try:
        # Reading every tensor catches truncation, which the header alone may not.
        with safe_open(str(weights), framework="pt") as tensors:
            for key in tensors.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensors.get_tensor(key)
    except Exception as exc:
        raise failed_precondition(f"adapter {path}: {WEIGHTS_FILE} is unreadable ({exc})") from exc


# -- loading on a backend -----------------------------------------------------


def attach(backend: Backend, name: str, path: Path) -> None:
    """Load adapter `name` from `path` beside those already on `backend` (blocking).

    Holds the backend's adapter lock: peft injects layers into the shared
    model, and a forward must never run half way through that."""
    if not hasattr(backend, "adapter_lock"):
        raise failed_precondition(f"the {backend.name} backend cannot serve adapters; use BACKEND=transformers")
    from peft import PeftModel

    target: Any = backend
    with target.adapter_lock:
        try:
            if target.peft is None:
                target.peft = PeftModel.from_pretrained(target.model, str(path), adapter_name=name, is_trainable=False)
            else:
                target.peft.load_adapter(str(path), adapter_name=name, is_trainable=False)
            target.peft.eval()
        except Exception as exc:
            if target.peft is not None and name in target.peft.peft_config:
                with contextlib.suppress(Exception):
                    target.peft.delete_adapter(name)
            raise failed_precondition(f"loading adapter {name} from {path} failed: {exc}") from exc


def detach(backend: Backend, name: str) -> None:
    target: Any = backend
    with target.adapter_lock:
        if target.peft is not None and name in target.peft.peft_config:
            target.peft.delete_adapter(name)


# -- smoke test ---------------------------------------------------------------


def require_parse(base: ModelInfo, setting: str | None = None) -> bool:
    setting = (setting if setting is not None else os.environ.get("SMOKE_REQUIRE_PARSE", "auto")).lower()
    if setting in ("1", "true", "yes"):
        return True
    if setting in ("0", "false", "no"):
        return False
    if setting != "auto":
        raise invalid_argument(f"SMOKE_REQUIRE_PARSE must be auto, true or false, got {setting!r}")
    return base.parameters >= TINY_MODEL_PARAMETERS


def candidates(prompt: str, completion: str) -> list[str]:
    """The prompt plus each whole-line prefix of the completion, and all of it."""
    cuts = [i + 1 for i, c in enumerate(completion) if c == "\n"] + [len(completion)]
    return [prompt + completion[:cut] for cut in dict.fromkeys(cuts)]


def parse_elixir(sources: list[str], timeout: float = PARSE_TIMEOUT_S) -> tuple[list[bool] | None, str]:
    """Which sources Code.string_to_quoted accepts, by running `elixir`; (None, why) when it cannot run."""
    elixir = shutil.which("elixir")
    if elixir is None:
        return None, "elixir is not on PATH; parse not checked"
    script = (
        '[dir] = System.argv(); for f <- Enum.sort(Path.wildcard(Path.join(dir, "*.ex"))) do '
        "ok = match?({:ok, _}, Code.string_to_quoted(File.read!(f))); "
        'IO.puts(Path.basename(f) <> if(ok, do: " ok", else: " error")) end'
    )
    with tempfile.TemporaryDirectory(prefix="smoke-") as directory:
        for index, source in enumerate(sources):
            Path(directory, f"{index:03d}.ex").write_text(source)
        try:
            done = subprocess.run(
                [elixir, "-e", script, directory], capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return None, f"elixir parse check timed out after {timeout:.0f}s"
        if done.returncode != 0:
            return None, f"elixir parse check exited {done.returncode}: {done.stderr.strip()[-300:]}"
    verdicts = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    return [verdicts.get(f"{i:03d}.ex") == "ok" for i in range(len(sources))], ""


async def smoke_test(backend: Any, name: str, required: bool) -> SmokeResult:
    """Greedy completions of SMOKE_PROMPTS on adapter `name`; raises if one fails to finish."""
    options = SamplingOptions(max_tokens=SMOKE_MAX_TOKENS)
    sources: list[list[str]] = []
    for prompt in SMOKE_PROMPTS:
        ids = backend.encode(TextPrompt(prompt))
        text, finished = "", False
        async for delta in backend.generate(ids, options, adapter=name):
            text += delta.text
            finished = delta.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
        if not finished:
            raise failed_precondition(f"smoke test of adapter {name}: generation on {prompt!r} did not finish")
        sources.append(candidates(prompt, text))
    flat = [source for group in sources for source in group]
    verdicts, note = await run_in_thread(parse_elixir, flat)
    parsed = 0
    if verdicts is not None:
        start = 0
        for group in sources:
            parsed += any(verdicts[start : start + len(group)])
            start += len(group)
    return SmokeResult(True, parsed, len(sources), required, note)


# -- activation ---------------------------------------------------------------


# What the model manager offers the registry (models.ModelManager implements it).
CurrentModel = Callable[[], tuple[Backend, AdapterState]]


class Adapters:
    """The registry and activation state of one worker."""

    def __init__(self, root: Path, current: CurrentModel, *, require_parse_setting: str | None = None) -> None:
        self.root = root
        self._current = current
        self._lock = asyncio.Lock()
        self._smoke: dict[str, SmokeResult] = {}
        self._require_parse_setting = require_parse_setting

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    def smoke_result(self, name: str) -> SmokeResult | None:
        return self._smoke.get(name)

    def listing(self, root: str = "") -> tuple[list[AdapterRecord], AdapterState | None, ModelInfo | None]:
        """The registry and, when a model is loaded, its adapter state."""
        records = scan(Path(root) if root else self.root)
        try:
            backend, state = self._current()
        except WorkerError:
            return records, None, None
        return records, state, backend.info

    async def _load(self, backend: Backend, state: AdapterState, name: str) -> bool:
        """Load `name` unless it is; True when this call loaded it."""
        if name in state.loaded:
            return False
        path = check_name(self.root, name)
        await run_in_thread(check_adapter, path, backend.info)
        await run_in_thread(attach, backend, name, path)
        state.loaded.add(name)
        return True

    async def activate(self, requested: str) -> tuple[AdapterState, SmokeResult | None]:
        """Blue-green activation of `requested` ("" = the plain base model)."""
        async with self._lock:
            backend, state = self._current()
            name = adapter_name(requested, backend.info)
            if not name:
                self._switch(backend, state, "")
                return state, None
            newly = await self._load(backend, state, name)
            try:
                result = await smoke_test(backend, name, require_parse(backend.info, self._require_parse_setting))
            except WorkerError as exc:
                self._drop(backend, state, name, newly)
                raise failed_precondition(f"adapter {name} not activated: {exc.message}") from exc
            except Exception as exc:
                self._drop(backend, state, name, newly)
                raise failed_precondition(f"adapter {name} not activated: smoke test failed: {exc}") from exc
            self._smoke[name] = result
            if not result.passed:
                self._drop(backend, state, name, newly)
                raise failed_precondition(
                    f"adapter {name} not activated: {result.parsed} of {result.prompts} smoke-test completions "
                    f"parse as Elixir and parsing is required (SMOKE_REQUIRE_PARSE) {result.note}".rstrip()
                )
            self._switch(backend, state, name)
            return state, result

    async def rollback(self) -> AdapterState:
        async with self._lock:
            backend, state = self._current()
            if not state.previous and not state.active:
                raise failed_precondition("nothing to roll back to: no adapter has been activated")
            target = state.previous
            if target and target not in state.loaded:
                await self._load(backend, state, target)
            self._switch(backend, state, target)
            return state

    def _drop(self, backend: Backend, state: AdapterState, name: str, newly: bool) -> None:
        # Only an adapter this activation loaded goes; nothing can be using it yet.
        if newly:
            state.loaded.discard(name)
            with contextlib.suppress(Exception):
                detach(backend, name)

    def _switch(self, backend: Backend, state: AdapterState, name: str) -> None:
        if name == state.active:
            return
        # Both assignments happen without an await between them: a request
        # resolves its adapter on the event loop, so it sees the old pair or the new.
        state.previous, state.active = state.active, name
        self._save(backend.info, state)
        log.info("active adapter: %s (previous: %s)", name or "(base model)", state.previous or "(base model)")

    def _save(self, base: ModelInfo, state: AdapterState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        record = {
            "base_model": base.path,
            "active": state.active,
            "previous": state.previous,
            "updated_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        temporary = self.state_path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(temporary, self.state_path)

    async def restore(self) -> None:
        """Load the recorded active and previous adapters (startup; no smoke test,
        they passed it when activated). A failure is logged and the base serves."""
        record = _read_json(self.state_path)
        if not isinstance(record, dict) or not (record.get("active") or record.get("previous")):
            return
        backend, state = self._current()
        if not same_base(str(record.get("base_model") or ""), backend.info):
            log.warning(
                "%s is for base model %s, not %s; not restoring its adapters",
                self.state_path,
                record.get("base_model"),
                backend.info.path,
            )
            return
        for key in ("previous", "active"):
            name = str(record.get(key) or "")
            if not name:
                continue
            try:
                await self._load(backend, state, name)
            except WorkerError as exc:
                log.error("restoring the %s adapter %s failed: %s", key, name, exc.message)
                continue
            setattr(state, key, name)
        log.info("restored active adapter %s from %s", state.active or "(base model)", self.state_path)
