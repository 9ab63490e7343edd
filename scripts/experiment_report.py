# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Results of one experiment run: results.csv, summary.md and the PNGs, from its raw.json.

``make experiment E=<name>`` calls it at the end of a run; run it again by hand to redraw:

    scripts/experiment_report.py --run-dir .lab/experiments/streaming/latest   (or the directory alone)

Writes into the run directory:

- ``results.csv``       one row per variant x repetition; columns variant, repetition, then each
                        measure (per-node measures as ``<measure>@<node>``)
- ``summary.md``        the question, medians with min-max per variant, the answer generated from
                        the numbers, the notes and events, links to the images
- ``<measure>.png``     median with min-max whiskers per variant (one colour per node)
- ``lag.png``           heartbeat lag and byte lag over the whole experiment, each run's phase shaded
                        in its variant's colour

The measures' metadata (unit, per node, which direction is better) comes from the plan in raw.json
(``plan.measure_info``), else from the catalog (plugins/module_utils/_experiment_catalog.py).
Exit status 0 when everything was written, 2 when raw.json is missing or unreadable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.paths import use_checkout  # noqa: E402

use_checkout()  # tests/support: the collection, tests/ and tests/integration/ on sys.path

from ansible_collections.inventium.logical_replication.plugins.module_utils import (  # noqa: E402
    _experiment_catalog,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils import (  # noqa: E402
    _experiment_results as results,
)

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "inventium-matplotlib"))

DPI = 110
NODE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
VARIANT_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def measure_info(raw: dict) -> dict:
    """Catalog metadata of the plan's measures: the plan's own copy, the catalog for anything missing."""
    info = dict(raw.get("plan", {}).get("measure_info") or {})
    for name in raw.get("plan", {}).get("measures", []):
        if name not in info and name in _experiment_catalog.CATALOG:
            info[name] = _experiment_catalog.CATALOG[name]
    return info


def parse_time(value) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def byte_scale(peak: float) -> tuple[float, str]:
    """Divisor and unit for an axis of bytes whose largest value is ``peak``."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if peak >= factor:
            return float(factor), unit
    return 1.0, "bytes"


def measure_plot(path: Path, measure: str, info: dict, raw: dict, variants: list[str]) -> None:
    """Median (marker) with min-max whiskers per variant; per-node measures: one colour per node."""
    plt = _plt()
    names, rows = results.table(raw, {measure: info})
    columns = [c for c in names if c == measure or c.startswith(measure + "@")]
    stats = results.aggregate(names, rows, variants)
    unit = info.get("unit", "")
    everything = [v for c in columns for s in stats[c].values() for v in s["values"]]
    scale = 1.0
    if unit == "bytes":
        scale, unit = byte_scale(max(everything, default=0))
    fig, ax = plt.subplots(figsize=(max(5.5, 1.4 * len(variants) + 2.5), 4.2))
    width = 0.7 / max(1, len(columns))
    plotted = False
    for index, column in enumerate(columns):
        label = column.split("@", 1)[1] if "@" in column else None
        colour = NODE_COLOURS[index % len(NODE_COLOURS)]
        xs, medians, low, high = [], [], [], []
        for position, variant in enumerate(variants):
            s = stats[column][variant]
            if s["median"] is None:
                continue
            x = position + (index - (len(columns) - 1) / 2) * width
            xs.append(x)
            medians.append(s["median"] / scale)
            low.append((s["median"] - s["min"]) / scale)
            high.append((s["max"] - s["median"]) / scale)
            dots = [v / scale for v in s["values"]]
            ax.scatter([x] * len(dots), dots, s=10, color=colour, alpha=0.35, zorder=2)
        if xs:
            plotted = True
            ax.errorbar(
                xs, medians, yerr=[low, high], fmt="o", color=colour, capsize=5, markersize=7, label=label, zorder=3
            )
    ax.set_xticks(range(len(variants)))
    ax.set_xticklabels(variants)
    ax.set_xlim(-0.6, len(variants) - 0.4)
    ax.set_ylabel(unit)
    if plotted and min(everything) >= 0:
        top = ax.get_ylim()[1]
        ax.set_ylim(bottom=0, top=top if top > 0 else 1)
    ax.grid(True, axis="y", alpha=0.3)
    better = info.get("better", "none")
    ax.set_title(
        f"{measure} ({info.get('unit', '')}; {results.BETTER_WORDS.get(better, better)})\n"
        "median, whiskers min-max, dots: repetitions",
        fontsize=10,
    )
    if not plotted:
        ax.text(0.5, 0.5, "no values (see summary.md, Notes)", ha="center", va="center", transform=ax.transAxes)
    elif any("@" in c for c in columns):
        ax.legend(title="node", fontsize=8, title_fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def lag_plot(path: Path, raw: dict, variants: list[str]) -> bool:
    """Heartbeat lag (s) and byte lag per node over the experiment, each run's phase shaded. False: no series."""
    import matplotlib.dates as mdates

    plt = _plt()
    panels = [("heartbeat_lag", "heartbeat lag (s): age of the oldest beat not yet seen"), ("byte_lag", None)]
    lines: dict[str, dict[str, tuple[list, list]]] = {}
    for run in raw.get("runs", []):
        for kind, _title in panels:
            for node, points in ((run.get("series") or {}).get(kind) or {}).items():
                pairs = sorted((float(ts), float(v)) for ts, v in points if v is not None)
                if not pairs:
                    continue
                times, values = lines.setdefault(kind, {}).setdefault(node, ([], []))
                if times:  # a NaN point ends the previous run's line: no line across the pause between runs
                    times.append(times[-1])
                    values.append(math.nan)
                times.extend(parse_time(ts) for ts, _value in pairs)
                values.extend(value for _ts, value in pairs)
    if not lines:
        return False
    shown = [(kind, title) for kind, title in panels if lines.get(kind)]
    fig, axes = plt.subplots(len(shown), 1, figsize=(13, 3.8 * len(shown)), squeeze=False, sharex=True)
    colours = {v: VARIANT_COLOURS[i % len(VARIANT_COLOURS)] for i, v in enumerate(variants)}
    for ax, (kind, title) in zip(axes[:, 0], shown, strict=True):
        scale, unit = 1.0, "s"
        if kind == "byte_lag":
            peak = max(
                (max((x for x in v if not math.isnan(x)), default=0) for _times, v in lines[kind].values()), default=0
            )
            scale, unit = byte_scale(peak)
            title = f"byte lag ({unit}): publisher WAL position minus the node's replay position"
        labelled = set()
        for run in raw.get("runs", []):
            start, end = parse_time(run.get("started_at")), parse_time(run.get("finished_at"))
            if start is None or end is None:
                continue
            variant = run.get("variant")
            label = f"variant {variant}" if variant not in labelled else None
            labelled.add(variant)
            ax.axvspan(start, end, color=colours.get(variant, "#cccccc"), alpha=0.18, label=label, zorder=0)
            ax.text(start, 0.98, f" {run.get('repetition')}", transform=ax.get_xaxis_transform(), fontsize=7, va="top")
        for index, (node, (times, values)) in enumerate(sorted(lines[kind].items())):
            ax.plot(
                times,
                [v / scale for v in values],
                label=node,
                color=NODE_COLOURS[index % len(NODE_COLOURS)],
                linewidth=1.1,
                zorder=2,
            )
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=dt.UTC))
    axes[-1, 0].set_xlabel("time (UTC); shaded: the runs, number = repetition")
    fig.suptitle(f"Experiment {raw.get('experiment') or raw.get('plan', {}).get('name')}: lag during the runs")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def write_report(run_dir: Path) -> list[Path]:
    """Write results.csv, summary.md and the PNGs into ``run_dir``; return the written paths."""
    raw = json.loads((run_dir / "raw.json").read_text(encoding="utf-8"))
    info = measure_info(raw)
    names, rows = results.table(raw, info)
    written = []
    csv_path = run_dir / "results.csv"
    csv_path.write_text(results.csv_text(names, rows), encoding="utf-8")
    written.append(csv_path)
    variants = results.variant_names(raw)
    images = []
    for measure in raw.get("plan", {}).get("measures", []):
        path = run_dir / f"{measure}.png"
        measure_plot(path, measure, info.get(measure, {}), raw, variants)
        images.append((measure, path))
    lag = run_dir / "lag.png"
    if lag_plot(lag, raw, variants):
        images.append(("lag", lag))
    elif lag.exists():
        lag.unlink()
    text = results.summary(raw, info)
    text += "\n## Plots\n\n" + "".join(f"![{name}]({path.name})\n" for name, path in images)
    summary_path = run_dir / "summary.md"
    summary_path.write_text(text, encoding="utf-8")
    written.append(summary_path)
    written += [path for _name, path in images]
    # Private like the rest of .lab (0700 / 0600), raw.json included.
    run_dir.chmod(0o700)
    for path in [run_dir / "raw.json", *written]:
        path.chmod(0o600)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", help="the run's directory (holds raw.json)")
    parser.add_argument("run_dir_arg", nargs="?", metavar="RUN_DIR", help="the same, as a positional argument")
    args = parser.parse_args(argv)
    if bool(args.run_dir) == bool(args.run_dir_arg):
        parser.error("give the run's directory once: --run-dir DIR or DIR")
    run_dir = Path(args.run_dir or args.run_dir_arg)
    os.umask(0o077)  # every file written is private (0600), like the rest of .lab
    try:
        written = write_report(run_dir)
    except (OSError, ValueError) as exc:
        print(f"experiment_report: cannot read {run_dir / 'raw.json'}: {exc}", file=sys.stderr)
        return 2
    print(f"experiment report written to {run_dir}: " + ", ".join(p.name for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
