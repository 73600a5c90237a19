#!/usr/bin/env bash
# Regenerates the code for proto/worker.proto:
#   python_worker/proto/worker_pb2{,_grpc}.py(i)  with grpc_tools.protoc
# Run from anywhere: scripts/gen_proto.sh (needs the .venv; `make proto` runs it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
cd "$root"
# The virtual include path makes the generated grpc module import its
# messages as `python_worker.proto.worker_pb2`, so no sys.path tricks are needed.
"$py" -m grpc_tools.protoc \
  -Ipython_worker/proto=proto \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  python_worker/proto/worker.proto
