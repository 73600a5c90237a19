"""The dataset builder: scraped corpora -> three training stages.

    .venv/bin/python -m python_worker.dataset --input data/raw/hex --out data/datasets/NAME

Entry points: `python_worker.dataset.build.build` (a plain function; not
re-exported here, so the name `build` keeps meaning the module), `rpc.build_dataset_events` (the
BuildDataset RPC as a generator of JobEvents) and the CLI in `__main__.py`.
Modules, one job each: config (typed config), inputs (scraper layout), clean,
scrub (secrets), lexer + dedup + decontam, split, elixir_ast + spans + fim_rows
(stage 2 FIM), mining (stage 2 pairs), iex + books (stage 3), replay, tokens,
worker + pool (parallel passes), output (atomic directory), report.
"""

from python_worker.dataset.build import BuildRequest, BuildResult
from python_worker.dataset.config import DatasetConfig, load_config, parse_config
from python_worker.dataset.errors import ConfigError, InvalidRequest

__all__ = [
    "BuildRequest",
    "BuildResult",
    "ConfigError",
    "DatasetConfig",
    "InvalidRequest",
    "load_config",
    "parse_config",
]
