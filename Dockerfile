# One image for the host and the worker: Debian's Elixir/yaws/jiffy plus the
# Python venv. GPU users install the CUDA build of torch (TORCH_INDEX) and,
# for the vllm service, the `vllm` extra.
FROM debian:bookworm-slim
ARG TORCH_INDEX=""
ARG EXTRAS=""
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      elixir erlang-dev erlang-yaws erlang-jiffy erlang-src python3 python3-venv python3-pip make ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY python_worker/requirements.txt python_worker/requirements.txt
RUN python3 -m venv .venv \
    && if [ -n "$TORCH_INDEX" ]; then .venv/bin/pip install torch==2.13.0 --index-url "$TORCH_INDEX"; fi \
    && .venv/bin/pip install -r python_worker/requirements.txt \
    && if [ -n "$EXTRAS" ]; then .venv/bin/pip install $EXTRAS; fi
COPY . .
RUN mkdir -p .make && touch .make/venv && cd elixir && mix compile
ENV HTTP_HOST=0.0.0.0 DATA_DIR=/data ERL_LIBS=/usr/lib/yaws
CMD ["make", "run"]
