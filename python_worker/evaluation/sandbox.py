"""Run one untrusted Elixir program (`elixir main.exs`) in a sandbox.

Each run is its own OS process in its own session (process group), with:

* a wall-clock limit (5 s by default): the whole group is SIGKILLed, and with
  bubblewrap the program's PID namespace dies with it;
* rlimits set by `prlimit` before exec: CPU seconds, address space, file size,
  process count (RLIMIT_NPROC counts per user, so as root each run gets its
  own unused uid from 61000-61999, leased with a lock file so that no two
  runs share one, even across processes, and whatever is left under it is
  swept after the run);
* a fresh, size-capped working directory (a tmpfs at /box under bubblewrap)
  that disappears with the run; the host temp dir holding the program file is
  deleted afterwards;
* an environment built from an allowlist (PATH, HOME = the working dir, LANG,
  the BEAM's flags): no token, key, secret or password variable gets in;
* no network (bubblewrap's `--unshare-all`: a fresh network namespace with only
  a down loopback), a read-only /usr and /etc and nothing else of the host's
  file system (no /root, /home, /work), a private /tmp;
* stdout and stderr read as they come, keeping only a capped tail; a run that
  writes more than `max_output_bytes` is killed.

The BEAM reserves a 1 GiB literal area and starts a thread per scheduler, so
rlimits alone stop it from starting; `BEAM_FLAGS` shrink both (measured: with
them `elixir` starts under a 384 MiB address-space limit, without them not
under 2 GiB). Whatever cannot be applied on this machine (no bubblewrap, not
root) is listed in `Sandbox.report()['unavailable']`, never silently dropped.
"""

from __future__ import annotations

import fcntl
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

# One scheduler, one dirty CPU/IO scheduler, one async thread, a 128 MiB
# literal super carrier (default 1 GiB), no busy-waiting, no crash dumps.
BEAM_FLAGS = "+MIscs 128 +S 1:1 +SDcpu 1:1 +SDio 1 +A 1 +sbwt none +sbwtdcpu none +sbwtdio none"
SANDBOX_UIDS = range(61000, 62000)
_LEASES = Path(tempfile.gettempdir()) / "devstral-sandbox-uids"
BOX = "/box"
PROGRAM = "main.exs"


@dataclass(frozen=True)
class Limits:
    """What one program may use; every field is enforced or reported unavailable."""

    timeout_s: float = 5.0
    cpu_s: int = 10
    memory_mb: int = 1024  # address space (the BEAM needs ~384 MiB to start)
    file_size_mb: int = 16
    processes: int = 64  # OS processes + threads of the run's uid
    workdir_mb: int = 64  # tmpfs size of the working dir and of /tmp
    tail_bytes: int = 4096  # kept of stdout and of stderr each
    max_output_bytes: int = 8 << 20  # more than this (both streams) kills the run


@dataclass
class RunResult:
    exit_code: int | None  # None when killed by a signal
    duration_s: float
    stdout: str
    stderr: str
    timed_out: bool = False
    killed: str = ""  # why the sandbox killed it: "timeout", "output limit", or "signal N"
    output_bytes: int = 0


class _Tail:
    def __init__(self, cap: int) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.cap = cap

    def add(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        while self.chunks and self.size - len(self.chunks[0]) >= self.cap:
            self.size -= len(self.chunks.popleft())

    def text(self) -> str:
        return b"".join(self.chunks)[-self.cap :].decode("utf-8", "replace")


def _bwrap_works() -> str:
    """'' when bubblewrap can build our sandbox here, else why not."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    lease = _UidLease() if os.geteuid() == 0 and shutil.which("setpriv") else None
    try:
        if lease:
            lease.acquire()
        proc = subprocess.run(
            [*_as_user(lease.uid if lease else None), exe, *_bwrap_mounts(), "--unshare-all",
             "--die-with-parent", "true"],
            check=False,
            capture_output=True,
            timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap failed to start: {exc}"
    finally:
        if lease:
            lease.release()
    if proc.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {proc.stderr.decode(errors='replace').strip()}"
    return ""


def _bwrap_mounts() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    return args + ["--dev", "/dev", "--proc", "/proc"]


class _UidLease:
    """An unused uid for one run, held (by an flock on its lock file) until release()."""

    def __init__(self) -> None:
        self.uid = -1
        self._fd = -1

    def acquire(self) -> int:
        _LEASES.mkdir(mode=0o700, exist_ok=True)
        for uid in SANDBOX_UIDS:
            fd = os.open(_LEASES / f"{uid}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return uid
        raise RuntimeError(f"every sandbox uid ({SANDBOX_UIDS.start}-{SANDBOX_UIDS.stop - 1}) is in use")

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _as_user(uid: int | None) -> list[str]:
    """A `setpriv` prefix that runs the command as `uid` (no supplementary groups).

    A command prefix rather than Popen(user=...): with a uid to set, Python
    must fork() the whole worker (and run every fork handler, such as gRPC's)
    instead of using vfork.
    """
    if uid is None:
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


@dataclass
class Sandbox:
    """Runs programs under `limits`; `slots` runs may go at once (one per thread)."""

    limits: Limits = field(default_factory=Limits)
    slots: int = 1
    elixir: str = ""

    def __post_init__(self) -> None:
        self.elixir = self.elixir or shutil.which("elixir") or ""
        if not self.elixir:
            raise RuntimeError("elixir is not on PATH: the sandbox runs programs with `elixir main.exs`")
        if shutil.which("prlimit") is None:
            raise RuntimeError("prlimit (util-linux) is not on PATH: the sandbox sets its rlimits with it")
        # Own uids per run need root and setpriv (util-linux).
        self.root = os.geteuid() == 0 and shutil.which("setpriv") is not None
        self.bwrap_problem = _bwrap_works()
        self.use_bwrap = not self.bwrap_problem
        self._slots = threading.BoundedSemaphore(max(1, self.slots))
        self._self_test()

    def _self_test(self) -> None:
        """Start `elixir` once under every limit, so a sandbox that cannot run
        anything (elixir installed outside /usr, a memory limit too small for
        the BEAM) fails here, loudly, instead of scoring every sample 0."""
        probe = 'IO.puts("sandbox-self-test-ok")\n'
        # A generous wall clock: a loaded machine must not look like a broken sandbox.
        result = self.run(probe, timeout_s=60)
        if self.use_bwrap and "sandbox-self-test-ok" not in result.stdout:
            self.bwrap_problem = f"elixir does not start inside bubblewrap: {_last_line(result.stderr)}"
            self.use_bwrap = False
            result = self.run(probe, timeout_s=60)
        if "sandbox-self-test-ok" not in result.stdout or result.exit_code != 0:
            raise RuntimeError(
                f"elixir cannot start under the sandbox's limits ({asdict(self.limits)}): "
                f"exit {result.exit_code} {result.killed}; {_last_line(result.stderr)}"
            )

    def report(self) -> dict:
        """The limits applied on this machine and those that are not, with why."""
        lim = self.limits
        applied = [
            f"wall clock {lim.timeout_s:g} s (process group killed)",
            f"CPU {lim.cpu_s} s (RLIMIT_CPU)",
            f"address space {lim.memory_mb} MiB (RLIMIT_AS)",
            f"file size {lim.file_size_mb} MiB (RLIMIT_FSIZE)",
            "core dumps off (RLIMIT_CORE 0)",
            f"output tail {lim.tail_bytes} B per stream kept, killed past {lim.max_output_bytes} B",
            "environment from an allowlist (PATH, HOME=working dir, LANG); no secrets",
            "fresh working directory, deleted afterwards",
        ]
        unavailable = []
        if self.root:
            applied.append(f"processes {lim.processes} per run (RLIMIT_NPROC, an own uid per run)")
        else:
            unavailable.append(
                "process count: RLIMIT_NPROC counts per user and the worker is not root, so runs cannot get their own uid"
            )
        if self.use_bwrap:
            applied += [
                "no network (new network namespace, bubblewrap --unshare-all)",
                "new PID, IPC and UTS namespaces",
                "read-only /usr and /etc; no other host directories visible",
                f"working dir and /tmp on private tmpfs of {lim.workdir_mb} MiB",
            ]
        else:
            unavailable += [
                f"network isolation: {self.bwrap_problem}",
                f"read-only root and private /tmp: {self.bwrap_problem}",
            ]
        unavailable.append("memory as RSS (cgroups are not writable here); address space is limited instead")
        return {"applied": applied, "unavailable": unavailable, "limits": asdict(lim), "beam_flags": BEAM_FLAGS}

    def run(self, program: str, stdin: str = "", timeout_s: float | None = None) -> RunResult:
        """Run `program` as `elixir main.exs`; blocks until it ends or is killed.
        `timeout_s` overrides the limits' wall clock for this run."""
        with self._slots:
            lease = _UidLease() if self.root else None
            try:
                uid = lease.acquire() if lease else None
                return self._run(program, stdin, uid, timeout_s or self.limits.timeout_s)
            finally:
                if lease:
                    lease.release()

    def _env(self, home: str) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TMPDIR": "/tmp",
            "ERL_FLAGS": BEAM_FLAGS,
            "ERL_CRASH_DUMP_BYTES": "0",
        }

    def _rlimits(self, uid: int | None) -> list[str]:
        """`prlimit` in front of the command (after setpriv): no preexec_fn, which is unsafe with threads."""
        lim = self.limits
        mib = 1 << 20
        args = [
            "prlimit",
            f"--cpu={lim.cpu_s}:{lim.cpu_s + 1}",
            f"--as={lim.memory_mb * mib}",
            f"--fsize={lim.file_size_mb * mib}",
            "--core=0",
        ]
        if uid is not None:
            args.append(f"--nproc={lim.processes}")
        return [*args, "--"]

    def _run(self, program: str, stdin: str, uid: int | None, timeout_s: float) -> RunResult:
        host_dir = tempfile.mkdtemp(prefix="eval-box-")
        try:
            path = Path(host_dir) / PROGRAM
            path.write_text(program, encoding="utf-8")
            if uid is not None:
                os.chown(host_dir, uid, uid)
                os.chown(path, uid, uid)
            if self.use_bwrap:
                size = str(self.limits.workdir_mb << 20)
                argv = [
                    "bwrap", *_bwrap_mounts(),
                    "--size", size, "--tmpfs", "/tmp",
                    "--size", size, "--tmpfs", BOX,
                    "--ro-bind", str(path), f"{BOX}/{PROGRAM}",
                    "--chdir", BOX, "--unshare-all", "--die-with-parent", "--new-session",
                    self.elixir, PROGRAM,
                ]  # fmt: skip
                env, cwd = self._env(BOX), host_dir
            else:
                argv = [self.elixir, PROGRAM]
                env, cwd = self._env(host_dir), host_dir
            return self._execute(_as_user(uid) + self._rlimits(uid) + argv, env, cwd, stdin, timeout_s)
        finally:
            if uid is not None:
                _sweep(uid)
            shutil.rmtree(host_dir, ignore_errors=True)

    def _execute(self, argv: list[str], env: dict, cwd: str, stdin: str, timeout_s: float) -> RunResult:
        lim = self.limits
        started = time.monotonic()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        tails = {proc.stdout: _Tail(lim.tail_bytes), proc.stderr: _Tail(lim.tail_bytes)}
        killed, total = "", 0
        try:
            try:
                assert proc.stdin is not None
                proc.stdin.write(stdin.encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            with selectors.DefaultSelector() as sel:
                for pipe in tails:
                    sel.register(pipe, selectors.EVENT_READ)
                deadline = started + timeout_s
                while sel.get_map():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        killed = "timeout"
                        break
                    for key, _ in sel.select(left):
                        data = os.read(key.fd, 65536)
                        if not data:
                            sel.unregister(key.fileobj)
                            continue
                        tails[key.fileobj].add(data)
                        total += len(data)
                    if total > lim.max_output_bytes:
                        killed = "output limit"
                        break
            if killed:
                _kill_group(proc)
            try:
                proc.wait(max(0.1, started + timeout_s - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed = "timeout"  # closed its output but kept running
                _kill_group(proc)
                proc.wait()
        finally:
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
            for pipe in tails:
                pipe.close()
        code = proc.returncode
        if code < 0 and not killed:
            killed = f"signal {-code}"
        elif self.use_bwrap and code > 128 and not killed:
            # bubblewrap reports a child killed by signal N as exit 128+N.
            killed = f"signal {code - 128}"
        return RunResult(
            exit_code=None if killed else code,
            duration_s=time.monotonic() - started,
            stdout=tails[proc.stdout].text(),
            stderr=tails[proc.stderr].text(),
            timed_out=killed == "timeout",
            killed=killed,
            output_bytes=total,
        )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _sweep(uid: int, wait_s: float = 2.0) -> None:
    """SIGKILL every process left under a run's uid (only that run used it),
    and wait (up to `wait_s`) until none is left but zombies."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = [pid for pid in _pids_of(uid) if not _zombie(pid)]
        if not alive or time.monotonic() > deadline:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def _pids_of(uid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                pids.append(int(entry.name))
        except FileNotFoundError:
            continue
    return pids


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
