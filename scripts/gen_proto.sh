#!/usr/bin/env bash
# Regenerates the code for proto/worker.proto:
#   python_worker/proto/worker_pb2{,_grpc}.py(i)  with grpc_tools.protoc
#   elixir/lib/devstral_elixir/proto/worker.pb.ex with scripts/protoc_gen_elixir.py
# and the Elixir code of the codec's test-only schema:
#   tests/golden/golden_test.pb.ex                (from tests/golden/golden_test.proto)
# Run from anywhere: scripts/gen_proto.sh [OUT_ROOT]
# (needs the .venv and mix; `make proto` runs it). With OUT_ROOT the files are
# written under that directory at the same relative paths instead of in the
# repo, which is how python_worker/tests/test_generated_code.py checks that the
# committed files are up to date.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
out="$(mkdir -p "${1:-$root}" && cd "${1:-$root}" && pwd)"
cd "$root"
# The virtual include path makes the generated grpc module import its
# messages as `python_worker.proto.worker_pb2`, so no sys.path tricks are needed.
"$py" -m grpc_tools.protoc \
  -Ipython_worker/proto=proto \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  python_worker/proto/worker.proto

ex_out="$out/elixir/lib/devstral_elixir/proto"
golden_out="$out/tests/golden"
mkdir -p "$ex_out" "$golden_out"
"$py" -m grpc_tools.protoc -Iproto \
  --plugin=protoc-gen-elixir=scripts/protoc-gen-elixir \
  --elixir_out=module_prefix=DevstralElixir.Proto:"$ex_out" \
  worker.proto
"$py" -m grpc_tools.protoc -Itests/golden \
  --plugin=protoc-gen-elixir=scripts/protoc-gen-elixir \
  --elixir_out=module_prefix=DevstralElixir.GoldenProto:"$golden_out" \
  golden_test.proto
# Formatted with the project's own formatter settings, so `mix format
# --check-formatted` agrees with the generator.
(cd elixir && mix format "$ex_out/worker.pb.ex" "$golden_out/golden_test.pb.ex")
