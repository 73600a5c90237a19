"""Secret scrubbing: the table's recall and precision, and throughput against a plain regex pass.

    .venv/bin/python bench/scrub.py [--mb 10] [--rounds 3] [--corpus DIR] [--no-save]

1. Recall: the share of the made-up secrets in python_worker/tests/scrub_table.py
   that are replaced; precision: of the table's texts the scrubber changed, the
   share that held a secret (look-alikes changed count against it).
2. Throughput: scrubbing file by file (as the dataset builder does) over --mb MB
   of Elixir source: this repository's own elixir/ tree, repeated to size, or the
   .ex/.exs/.md files under --corpus DIR. The baseline, run in the same process
   and alternated round by round, applies the same rules the plain way: each
   format, the generic name/assignment/literal rule and the `Bearer <token>` rule
   each as one whole-text regex
   (no substring prefilter, no anchoring at key words), with the same value check.
   If git history is present, the previous rule set (before the generic rule) is
   timed too, to show what the wider coverage costs.

Ends with emit("scrub", ...): one JSON line, saved to bench/results/scrub.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import emit
from python_worker.dataset import scrub
from python_worker.dataset.config import ScrubConfig
from python_worker.tests.scrub_table import LOOK_ALIKES, SECRETS

PREVIOUS_RULES_COMMIT = "b1c972d"  # the last scrub.py without the generic rule

# The baseline: the same rules, each a whole-text regex.
_PLAIN_GENERIC = re.compile(
    r"""(?i)([\w-]*(?:key|secret|token|passw|pwd|credential|auth|api|salt|bearer)[\w-]*)["']?[ \t]*"""
    r"""(?:=>|:=|:(?!:)|=(?![=~])|,|\)[ \t]*\|\|)\s{0,40}(?:<<)?(["'])(?:Bearer |Basic |Token )?([^"'\s]{8,512})\2"""
)
_PLAIN_BEARER = re.compile(r"(?i)bearer" + scrub._BEARER_VALUE.pattern)
_PLAIN_URL = re.compile(
    r"(?i)\b(?:ecto|postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|https?)://"
    r"([^:/@\s\"'<>]*):([^@/\s\"'<>]+)@"
)
_PLAIN_FORMATS = (
    (scrub._PRIVATE_KEY, "<PRIVATE_KEY>"),
    (scrub._AWS_KEY_ID, "<AWS_KEY>"),
    (scrub._KNOWN_TOKENS, "<SECRET>"),
    (scrub._JWT, "<SECRET>"),
    (scrub._SLACK_WEBHOOK, "<SECRET>"),
)


def plain_scrub(text: str) -> str:
    for pattern, placeholder in _PLAIN_FORMATS:
        text = pattern.sub(placeholder, text)

    def url(m: re.Match[str]) -> str:
        if not scrub.Scrubber._url_password(m.group(1), m.group(2)):
            return m.group(0)
        return m.group(0)[: m.start(2) - m.start(0)] + "<SECRET>@"

    text = _PLAIN_URL.sub(url, text)

    def generic(m: re.Match[str]) -> str:
        if not scrub.is_secret_value(m.group(1).lower(), m.group(3)):
            return m.group(0)
        return m.group(0)[: m.start(3) - m.start(0)] + "<SECRET>" + m.group(2)

    text = _PLAIN_GENERIC.sub(generic, text)

    def bearer(m: re.Match[str]) -> str:
        if not scrub.is_secret_value("bearer", m.group(1)):
            return m.group(0)
        return m.group(0)[: m.start(1) - m.start(0)] + "<SECRET>"

    return _PLAIN_BEARER.sub(bearer, text)


def previous_scrubber() -> Callable[[str], str] | None:
    """The rule set before the generic rule, from git history (None without history)."""
    try:
        source = subprocess.run(
            ["git", "show", f"{PREVIOUS_RULES_COMMIT}:python_worker/dataset/scrub.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "previous_scrub.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("previous_scrub", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scrubber = module.Scrubber(ScrubConfig())
    return lambda text: scrubber.scrub(text)[0]


def table_scores(fn: Callable[[str], str]) -> dict[str, float | int]:
    caught = sum(c.secret not in fn(c.text) for c in SECRETS)
    changed_secret = sum(fn(c.text) != c.text for c in SECRETS)
    false_pos = sum(fn(c.text) != c.text for c in LOOK_ALIKES)
    return {
        "recall": round(caught / len(SECRETS), 3),
        "precision": round(changed_secret / max(1, changed_secret + false_pos), 3),
        "false_positives": false_pos,
    }


def load_texts(corpus: Path | None, mb: float) -> list[str]:
    if corpus is not None:
        if not corpus.is_dir():
            sys.exit(f"--corpus {corpus}: not a directory")
        files = sorted(p for ext in ("*.ex", "*.exs", "*.md") for p in corpus.rglob(ext))
    else:
        base = ROOT / "elixir"
        files = sorted(p for ext in ("*.ex", "*.exs") for p in base.rglob(ext) if "_build" not in p.parts)
    texts = [p.read_bytes().decode("utf-8", "replace") for p in files if p.is_file()]
    if not texts:
        sys.exit(f"no .ex/.exs/.md files under {corpus or ROOT / 'elixir'}")
    target, out, used = mb * 1e6, [], 0
    while used < target:  # repeat (a small tree) or cut (a large one) to the asked size
        for t in texts:
            out.append(t)
            used += len(t.encode())
            if used >= target:
                break
    return out


def time_it(fn: Callable[[str], object], texts: list[str]) -> float:
    t0 = time.perf_counter()
    for t in texts:
        fn(t)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=10, help="MB of source scrubbed per round")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds; medians reported")
    ap.add_argument("--corpus", type=Path, default=None, help="read .ex/.exs/.md from here instead")
    ap.add_argument("--no-save", action="store_true", help="print only (toy sizes)")
    args = ap.parse_args()

    scrubber = scrub.Scrubber(ScrubConfig())
    ours = lambda text: scrubber.scrub(text)[0]
    previous = previous_scrubber()

    texts = load_texts(args.corpus, args.mb)
    size_mb = sum(len(t.encode()) for t in texts) / 1e6
    contenders = {"ours": ours, "plain": plain_scrub} | ({"previous": previous} if previous else {})
    runs: dict[str, list[float]] = {k: [] for k in contenders}
    found: Counter[str] = Counter()
    for t in texts[: len(texts) // max(1, round(size_mb))] if size_mb > 1 else texts:
        found.update(scrubber.scrub(t)[1])
    for _ in range(args.rounds):  # alternated: the machine is shared and noisy
        for name, fn in contenders.items():
            runs[name].append(time_it(fn, texts))
    mbps = {k: size_mb / statistics.median(v) for k, v in runs.items()}

    result = {
        "timed_mb": round(size_mb, 1),
        "files": len(texts),
        "source": str(args.corpus) if args.corpus else "this repository's elixir/ tree, repeated",
        "rounds": args.rounds,
        "table": {"secrets": len(SECRETS), "look_alikes": len(LOOK_ALIKES)},
        **{f"ours_{k}": v for k, v in table_scores(ours).items()},
        **{f"plain_{k}": v for k, v in table_scores(plain_scrub).items()},
        "ours_mb_per_s": round(mbps["ours"], 1),
        "plain_regex_mb_per_s": round(mbps["plain"], 1),
        "speedup_vs_plain_regex": round(mbps["ours"] / mbps["plain"], 2),
        "found_in_first_mb": dict(found),
    }
    if previous:
        result |= {f"previous_rules_{k}": v for k, v in table_scores(previous).items()}
        result["previous_rules_mb_per_s"] = round(mbps["previous"], 1)
        result["throughput_vs_previous_rules"] = round(mbps["ours"] / mbps["previous"], 2)
    emit("scrub", result, save=not args.no_save)


if __name__ == "__main__":
    main()
