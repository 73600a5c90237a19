"""REPORT.md and its charts, from the numbers that also go into manifest.json.

Deterministic on purpose: no timings or dates, and matplotlib's SVG writer gets
a fixed hash salt and no Date metadata, so two builds of the same inputs give
byte-identical reports.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from python_worker.dataset.config import ReportConfig


def _figure(width: float, height: float) -> Any:
    """A Figure on its own Agg canvas: no pyplot, so no global backend or figure
    registry is touched and two builds in one process can draw at once."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # The same fixed values on every call, so setting them from two threads is benign.
    matplotlib.rcParams["svg.hashsalt"] = "curriculum"
    matplotlib.rcParams["svg.fonttype"] = "path"
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path, fmt: str) -> None:
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(path, format=fmt, metadata=metadata)


# matplotlib's text layout (mathtext/pyparsing) is not thread-safe: two builds in
# one process draw their (small) charts one at a time.
_DRAW = threading.Lock()


def token_histograms(lengths: dict[int, np.ndarray], path: Path, cfg: ReportConfig) -> None:
    with _DRAW:
        _token_histograms(lengths, path, cfg)


def source_shares(tokens: dict[str, int], path: Path, cfg: ReportConfig) -> None:
    with _DRAW:
        _source_shares(tokens, path, cfg)


def _token_histograms(lengths: dict[int, np.ndarray], path: Path, cfg: ReportConfig) -> None:
    fig = _figure(12, 3.4)
    axes = fig.subplots(1, 3)
    for ax, stage in zip(axes, (1, 2, 3), strict=True):
        data = lengths.get(stage, np.empty(0))
        ax.set_title(f"stage {stage}: {len(data):,} rows")
        ax.set_xlabel("tokens per row")
        if len(data) and data.max() > 0:
            hi = max(2.0, float(data.max()))
            bins = np.unique(np.geomspace(1, hi + 1, cfg.histogram_bins).round())
            ax.hist(np.maximum(data, 1), bins=bins, color="#4e79a7")
            ax.set_xscale("log")
        else:
            ax.text(0.5, 0.5, "no rows", ha="center", va="center", transform=ax.transAxes)
    axes[0].set_ylabel("rows")
    fig.tight_layout()
    _save(fig, path, cfg.chart_format)


def _source_shares(tokens: dict[str, int], path: Path, cfg: ReportConfig) -> None:
    total = sum(tokens.values()) or 1
    ranked = sorted(tokens.items(), key=lambda kv: (-kv[1], kv[0]))
    named = [kv for kv in ranked if kv[0] != "replay"][: cfg.top_sources]
    other = total - sum(v for _, v in named) - tokens.get("replay", 0)
    bars = named + ([("(other sources)", other)] if other > 0 else [])
    if tokens.get("replay"):
        bars.append(("replay", tokens["replay"]))
    fig = _figure(8, 0.3 * len(bars) + 1.2)
    ax = fig.subplots()
    labels = [k for k, _ in bars][::-1]
    shares = [100.0 * v / total for _, v in bars][::-1]
    ax.barh(range(len(bars)), shares, color="#59a14f")
    ax.set_yticks(range(len(bars)), labels=labels, fontsize=8)
    ax.set_xlabel("share of all output tokens (%)")
    ax.set_title("share per source")
    fig.tight_layout()
    _save(fig, path, cfg.chart_format)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
    ]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def markdown(manifest: dict[str, Any], charts: list[str]) -> str:
    m = manifest
    lines = ["# Curriculum dataset report", ""]
    lines.append(
        f"Seed {m['seed']}; tokens counted with `{m['tokenizer']['name']}`. Numbers are also in `manifest.json`."
    )
    lines += ["", "## Inputs", ""]
    lines += _table(
        ["input", "manifest sha256", "sources"],
        [[f"`{i['path']}`", i["manifest_sha256"][:16], i["rows"]] for i in m["inputs"]],
    )
    for b in m["books"]:
        lines.append(f"\nBook directory `{b['path']}` ({b['name']}, licence {b['license']}).")
    f = m["files"]
    lines += [
        "",
        (
            f"{f['scanned']:,} files ({f['bytes'] / 1e6:.2f} MB) scanned, {f['kept']:,} kept "
            f"({f['kept_bytes'] / 1e6:.2f} MB). Sources: {m['sources']['train']} train, "
            f"{m['sources']['eval']} eval."
        ),
    ]
    sp = m["split"]
    lines += ["", "## Split", ""]
    lines.append(
        f"Target: {sp['eval_fraction']:.1%} of each stage's tokens in eval. The split is by package "
        "where whole packages can approach it, else by file, else by row."
    )
    lines.append("")
    lines += _table(
        ["stage", "split by", "eval share of tokens (replay excluded)"],
        [[stage, s["mode"], f"{s['eval_token_share']:.1%}"] for stage, s in sp["stages"].items()],
    )
    if m["sources"]["eval_keys"]:
        lines += ["", "Eval packages: " + ", ".join(f"`{k}`" for k in m["sources"]["eval_keys"]) + "."]
    if sp["eval_files"]:
        lines += ["", f"{len(sp['eval_files'])} files held out by a split by file."]
    lines += ["", "## Rows and tokens", ""]
    rows = []
    for stage, splits in m["stages"].items():
        for split, s in splits.items():
            rows.append(
                [
                    stage,
                    split,
                    f"{s['rows']:,}",
                    f"{s['tokens']:,}",
                    f"{s['replay_rows']:,}",
                    f"{s['replay_tokens']:,}",
                ]
            )
    lines += _table(["stage", "split", "rows", "tokens", "replay rows", "replay tokens"], rows)
    lines += ["", "Row kinds:", ""]
    lines += _table(["kind", "rows"], [[k, f"{v:,}"] for k, v in m["row_kinds"].items()])
    if "conversations" in m:
        lines += _conversation_lines(m["conversations"])
    lines += ["", "## Dropped files", ""]
    lines += _table(
        ["reason", "files", "MB"],
        [[r, f"{d['files']:,}", f"{d['bytes'] / 1e6:.3f}"] for r, d in m["drops"].items()],
    )
    lines += ["", "## Secrets scrubbed", ""]
    lines += (
        _table(["kind", "replacements"], [[k, v] for k, v in m["secrets"].items()]) if m["secrets"] else ["None found."]
    )
    lines += ["", "## Decontamination", ""]
    lines += (
        _table(
            ["eval set", "problems", "files dropped", "code n-gram hits", "prompt text hits", "solution hits"],
            [
                [
                    e["name"],
                    e["rows"],
                    m["decontamination"][e["name"]]["files"],
                    m["decontamination"][e["name"]]["ngram"],
                    m["decontamination"][e["name"]]["text"],
                    m["decontamination"][e["name"]]["solution"],
                ]
                for e in m["eval_sets"]
            ],
        )
        if m["eval_sets"]
        else ["No eval sets configured."]
    )
    if m["contaminated_files"]:
        lines += ["", "Dropped files (also in `manifest.json`, `contaminated_files`):", ""]
        lines += _table(
            ["source", "path", "problem", "kind", "match"],
            [
                [
                    c["source"],
                    f"`{c['path']}`",
                    c["problem"],
                    c["kind"],
                    "`" + c["match"][:80].replace("`", "'").replace("|", "\\|") + "`",
                ]
                for c in m["contaminated_files"]
            ],
        )
    if m["errors"]["count"]:
        lines += [
            "",
            "## Errors",
            "",
            f"{m['errors']['count']} files raised while building rows:",
            "",
        ]
        lines += [f"- `{e}`" for e in m["errors"]["first"]]
    lines += ["", "## Charts", ""]
    lines += [f"![{Path(c).stem}]({c})" for c in charts]
    return "\n".join(lines) + "\n"


def _conversation_lines(summary: dict[str, Any]) -> list[str]:
    """The conversation logs' section (dataset/conversations.py)."""
    lines = ["", "## Conversation logs", ""]
    lines.append(
        f"{summary['files']} log files, {summary['exchanges']} user → assistant exchanges, "
        f"{summary['rows']} kept as stage 2 rows (kind `conversation`); "
        f"{summary['skipped_lines']} malformed lines skipped."
    )
    if summary["drops"]:
        lines += ["", "| reason | exchanges |", "| --- | --- |"]
        lines += [f"| {reason} | {count} |" for reason, count in summary["drops"].items()]
    if summary["skipped_first"]:
        lines += ["", "First skipped lines:", ""]
        lines += [f"- `{s}`" for s in summary["skipped_first"]]
    return lines
