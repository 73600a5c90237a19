"""The worker's command line.

    .venv/bin/python -m python_worker serve                 # gRPC on 127.0.0.1:50051
    GRPC_PORT=0 .venv/bin/python -m python_worker serve     # any free port (logged)
    .venv/bin/python -m python_worker port                  # port on fds 3/4 + gRPC
    .venv/bin/python -m python_worker port --no-grpc        # port on fds 3/4 only

Flags override the environment variables documented in config.py (MODEL,
BACKEND, DEVICE, DTYPE, GRPC_HOST, GRPC_PORT, WORKER_TOKEN, MAX_FRAME_BYTES,
DATA_DIR, LOG_LEVEL). A bad value exits with status 2 and a message naming it.
All logging goes to stderr; in port mode stdout never carries protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading

from python_worker import __version__, app, config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m python_worker", description="The Python ML worker.")
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--host", help="gRPC bind address (GRPC_HOST); non-loopback needs WORKER_TOKEN")
        sub.add_argument("--port", help="gRPC port (GRPC_PORT); 0 picks a free one")
        sub.add_argument("--model", help=f"default model (MODEL); '{config.NO_MODEL}' loads none")
        sub.add_argument("--backend", help="transformers or vllm (BACKEND)")
        sub.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (DEVICE)")
        sub.add_argument("--dtype", help="auto, float32, bfloat16 or float16 (DTYPE)")

    common(commands.add_parser("serve", help="serve the Worker service over gRPC"))
    port = commands.add_parser("port", help="serve over fds 3/4 as an Erlang port (and gRPC)")
    common(port)
    port.add_argument("--no-grpc", action="store_true", help="serve only the port, no gRPC server")
    port.add_argument("--max-frame-bytes", help="largest frame accepted (MAX_FRAME_BYTES)")
    return parser


def _configure_logging(level: str) -> None:
    # stderr only: in port mode stdout is left to library noise, fds 3/4 to frames.
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {
        "GRPC_HOST": args.host,
        "GRPC_PORT": args.port,
        "MODEL": args.model,
        "BACKEND": args.backend,
        "DEVICE": args.device,
        "DTYPE": args.dtype,
        "MAX_FRAME_BYTES": getattr(args, "max_frame_bytes", None),
    }
    with_grpc = not getattr(args, "no_grpc", False)
    try:
        cfg = config.load(os.environ, overrides)
        if with_grpc:
            cfg.require_token_for_bind()
    except config.ConfigError as exc:
        print(f"python_worker: {exc}", file=sys.stderr)
        return 2
    _configure_logging(cfg.log_level)
    if args.command == "serve":
        return _leave(asyncio.run(app.serve(cfg)))
    try:
        reader, writer = app.open_port_fds()
    except app.PortSetupError as exc:
        logging.getLogger("python_worker").error("%s", exc)
        return 1
    return _leave(asyncio.run(app.port(cfg, reader, writer, with_grpc=with_grpc)))


def _leave(code: int) -> int:
    """Exit with `code` once the worker has closed everything it owns.

    A training step or a decode step may still be running in a thread when the
    loop ends: threads see a cancel only between steps. Finalising the
    interpreter underneath a thread that is inside torch aborts the process
    (SIGABRT, "terminate called without an active exception"), and the exit
    status would then lie to the host. Outputs are already safe (written to a
    temporary name and renamed), so in that case leave without finalisation.
    """
    lingering = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]
    if not lingering:
        return code
    logging.getLogger("python_worker").info(
        "exiting with %d thread(s) still running: %s", len(lingering), ", ".join(t.name for t in lingering)
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
