# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Experiment results: the table of runs, medians and min-max, results.csv and summary.md.

Input is ``raw.json`` as the runner writes it (``plan``, ``runs`` with ``measures``, ``notes``,
``events``; ``machine``, ``versions``). ``measure_info`` is the catalog metadata of each measure
(``unit``, ``per_node``, ``better``): the plan carries it (``plan.measure_info``), the report script
falls back to the catalog.

Columns: ``variant``, ``repetition``, then one per measure; a per-node measure gives one column per
node, ``<measure>@<node>``. A cell is a number or empty (not measured, or the variant does not run
on that node).

The answer in summary.md is generated from the medians, one line per ranked column::

    - `commit_visible_seconds@subscriber2` (s, lower is better): best `parallel` 0.412 s; `on` 0.9 s (2.18x), ...

``best`` names the variant(s) with the best median (several when tied); ``(N.NNx)`` is how many
times worse the other variant is (its median / the best for ``lower``, the best / its median for
``higher``). A column whose spread between repetitions (largest max - min of a variant) is larger
than the difference between the two best medians gets a ``spread`` note. Nothing here knows any
particular experiment. Standard library only (the report script imports it without Ansible).
"""

from __future__ import annotations

import csv
import io
import math
import statistics

FIXED_COLUMNS = ("variant", "repetition")
BETTER_WORDS = {"lower": "lower is better", "higher": "higher is better", "none": "not ranked"}
MAX_EVENTS = 60


def median(values):
    """Median of the numbers in ``values`` (``None`` skipped), ``None`` when there are none."""
    numbers = [float(v) for v in values if _is_number(v)]
    return statistics.median(numbers) if numbers else None


def min_max(values):
    """``(min, max)`` of the numbers in ``values`` (``None`` skipped), ``(None, None)`` when there are none."""
    numbers = [float(v) for v in values if _is_number(v)]
    return (min(numbers), max(numbers)) if numbers else (None, None)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def columns(plan, measure_info):
    """``[(column, measure, node or None)]`` in the plan's measure order, per-node measures per plan node."""
    out = []
    for measure in plan.get("measures", []):
        if (measure_info.get(measure) or {}).get("per_node"):
            out.extend((f"{measure}@{node}", measure, node) for node in plan.get("nodes", []))
        else:
            out.append((measure, measure, None))
    return out


def variant_names(raw):
    """Variants in the plan's order (those that ran), then any others found in the runs."""
    names = [v["name"] for v in raw.get("plan", {}).get("variants", [])]
    ran = [r.get("variant") for r in raw.get("runs", [])]
    ordered = [n for n in names if n in ran]
    ordered += [n for n in dict.fromkeys(ran) if n not in ordered]
    return ordered


def _cell(measures, measure, node):
    value = measures.get(measure)
    if node is not None:
        value = value.get(node) if isinstance(value, dict) else None
    elif isinstance(value, dict):
        value = None
    return value if _is_number(value) else None


def table(raw, measure_info):
    """``(column names, rows)``: one row (a dict) per run in run order."""
    cols = columns(raw.get("plan", {}), measure_info)
    rows = []
    for run in raw.get("runs", []):
        row = {"variant": run.get("variant"), "repetition": run.get("repetition")}
        measures = run.get("measures") or {}
        for column, measure, node in cols:
            row[column] = _cell(measures, measure, node)
        rows.append(row)
    return [*FIXED_COLUMNS, *(c[0] for c in cols)], rows


def csv_text(names, rows):
    """results.csv: a header line, then one line per row; empty cells for missing values."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow(["" if row.get(n) is None else _csv_number(row.get(n)) for n in names])
    return out.getvalue()


def _csv_number(value):
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def aggregate(names, rows, variants):
    """``{column: {variant: {"median", "min", "max", "n", "values"}}}`` for the measure columns."""
    out = {}
    for column in names:
        if column in FIXED_COLUMNS:
            continue
        out[column] = {}
        for variant in variants:
            values = [r[column] for r in rows if r.get("variant") == variant and r.get(column) is not None]
            low, high = min_max(values)
            out[column][variant] = {
                "median": median(values),
                "min": low,
                "max": high,
                "n": len(values),
                "values": values,
            }
    return out


def finding(column, stats, better):
    """The ranking of one column: ``{"column", "better", "medians", "best", "others", "spread", "difference",
    "spread_larger"}``; ``best`` is empty when the column is not ranked or has fewer than two variants with values."""
    medians = {v: s["median"] for v, s in stats.items() if s["median"] is not None}
    result = {
        "column": column,
        "better": better,
        "medians": medians,
        "best": [],
        "others": [],
        "spread": None,
        "difference": None,
        "spread_larger": False,
    }
    if better not in ("lower", "higher") or len(medians) < 2:
        return result
    sign = 1 if better == "lower" else -1
    order = sorted(medians, key=lambda v: sign * medians[v])
    top = medians[order[0]]
    result["best"] = [v for v in order if medians[v] == top]
    for variant in order:
        if variant in result["best"]:
            continue
        value = medians[variant]
        result["others"].append({"variant": variant, "median": value, "ratio": _ratio(top, value, better)})
    spreads = [s["max"] - s["min"] for s in stats.values() if s["n"] >= 2 and s["min"] is not None]
    distinct = sorted({medians[v] for v in order}, key=lambda x: sign * x)
    if spreads and len(distinct) >= 2:
        result["spread"] = max(spreads)
        result["difference"] = abs(distinct[1] - distinct[0])
        result["spread_larger"] = result["spread"] > result["difference"]
    return result


def _ratio(best, other, better):
    """How many times worse ``other`` is than ``best`` (``None`` when a zero makes it meaningless)."""
    numerator, denominator = (other, best) if better == "lower" else (best, other)
    if denominator == 0 or numerator < 0 or denominator < 0:
        return None
    return numerator / denominator


def findings(aggregates, names, measure_info):
    out = []
    for column in names:
        if column in FIXED_COLUMNS:
            continue
        measure = column.split("@", 1)[0]
        better = (measure_info.get(measure) or {}).get("better", "none")
        out.append(finding(column, aggregates[column], better))
    return out


# ------------------------------------------------------------------------------------ formatting


def fmt(value, unit):
    """A number in its unit, short: ``0.412 s``, ``1.5 MiB``, ``1,204 rows/s``; ``-`` for none."""
    if value is None:
        return "-"
    if unit == "bytes":
        size = float(value)
        for name, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if abs(size) >= factor:
                return f"{_sig(size / factor)} {name}"
        return f"{_sig(size)} B"
    if unit == "count":
        return f"{value:,.0f}" if float(value).is_integer() else _sig(value)
    text = _sig(value)
    return f"{text} {unit}" if unit and unit != "ratio" else text


def _sig(value, digits=3):
    """Three significant digits (trailing zeros dropped), thousands separated, no exponent."""
    value = float(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{round(value, decimals):,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _ratio_text(ratio):
    """``2.35x``; ``no ratio`` when the best is 0 (or a value is negative): "infinitely worse" says nothing."""
    return "no ratio" if ratio is None else f"{ratio:.2f}x"


def answer_line(item, unit):
    """One line of the generated answer (see the module docstring for its shape)."""
    column, better = item["column"], item["better"]
    head = f"- `{column}` ({unit}, {BETTER_WORDS.get(better, better)}): "
    medians = item["medians"]
    if better not in ("lower", "higher"):
        values = ", ".join(f"`{v}` {fmt(m, unit)}" for v, m in medians.items())
        return head + (values or "no values") + "."
    if len(medians) < 2:
        only = ", ".join(f"`{v}` {fmt(m, unit)}" for v, m in medians.items())
        return head + (f"only {only} has values, nothing to compare." if only else "no values.")
    best = " and ".join(f"`{v}`" for v in item["best"])
    tied = " (tied)" if len(item["best"]) > 1 else ""
    text = head + f"best {best}{tied} {fmt(medians[item['best'][0]], unit)}"
    if item["others"]:
        text += "; " + ", ".join(
            f"`{o['variant']}` {fmt(o['median'], unit)} ({_ratio_text(o['ratio'])})" for o in item["others"]
        )
    else:
        text += "; every variant has the same median"
    text += "."
    if item["spread_larger"]:
        text += (
            f" Spread between repetitions ({fmt(item['spread'], unit)}) is larger than the difference between"
            f" the best two variants ({fmt(item['difference'], unit)}): the ranking may be noise."
        )
    return text


def _notes(raw):
    """Plan and experiment notes, then run notes grouped by text with the runs (variant#repetition) they come from.

    The runner also copies run notes into the experiment's ``notes``: those are listed once, with their runs.
    """
    grouped = {}
    for run in raw.get("runs", []):
        for note in run.get("notes") or []:
            grouped.setdefault(note, []).append(f"{run.get('variant')}#{run.get('repetition')}")
    general = (raw.get("plan", {}).get("notes") or []) + (raw.get("notes") or [])
    out = [note for note in dict.fromkeys(general) if note not in grouped]
    out += [f"{note} (runs: {', '.join(runs)})" for note, runs in grouped.items()]
    return out


def _variant_lines(raw):
    lines = []
    for variant in raw.get("plan", {}).get("variants", []):
        parts = []
        for key in ("subscription", "publisher_settings", "subscriber_settings", "publication", "limits"):
            if variant.get(key):
                parts.append(f"{key} " + ", ".join(f"{k}={v}" for k, v in variant[key].items()))
        if variant.get("subscriber_sql"):
            parts.append("subscriber_sql " + "; ".join(variant["subscriber_sql"]))
        if variant.get("requires"):
            parts.append("requires " + ", ".join(f"{k}={v}" for k, v in variant["requires"].items()))
        nodes = ", ".join(variant.get("nodes") or []) or "none"
        lines.append(f"- `{variant.get('name')}`: {'; '.join(parts) or 'the lab as configured'} (nodes: {nodes})")
    return lines


def _event_lines(raw):
    lines = []
    for run in raw.get("runs", []):
        for event in run.get("events") or []:
            lines.append(
                f"- {run.get('variant')}#{run.get('repetition')} {event.get('node', '')}: {event.get('what', '')}"
            )
    if len(lines) > MAX_EVENTS:
        lines = [*lines[:MAX_EVENTS], f"- ... {len(lines) - MAX_EVENTS} more in raw.json"]
    return lines


def _recovery_lines(raw):
    """One line per node whose slot a run lost: what broke, who re-created it, and the equality proof.

    The proof comes from ``runs[].recovery`` as the runner fills it from experiment_compare: every table
    of the re-created subscription compared by row count and checksum with what is published to it.
    """
    lines = []
    for run in raw.get("runs", []):
        for node, rec in sorted((run.get("recovery") or {}).items()):
            what = f"- {run.get('variant')}#{run.get('repetition')} {node}: slot {rec.get('slot') or '?'} lost"
            if rec.get("error"):
                what += f" ({rec['error']})"
            if rec.get("equal") is None:
                lines.append(f"{what}; NOT recovered: no comparison recorded (see raw.json)")
                continue
            tables = rec.get("tables") or []
            how = rec.get("recreated_by") or "the runner"
            if rec["equal"]:
                caught_up = rec.get("caught_up_seconds")
                after = f" (caught up after {caught_up:.0f} s)" if isinstance(caught_up, (int, float)) else ""
                lines.append(
                    f"{what}; subscription {rec.get('subscription') or '?'} re-created by {how}; proven equal: "
                    f"{len(tables)} table(s), row counts and checksums match the publisher{after}"
                )
            else:
                different = ", ".join(str(t.get("table")) for t in tables if not t.get("equal"))
                problems = "".join(f"; {problem}" for problem in rec.get("problems") or [])
                lines.append(
                    f"{what}; subscription {rec.get('subscription') or '?'} re-created by {how}; NOT equal: "
                    f"{different or 'no table compared'}{problems}"
                )
    return lines


def _context_line(raw):
    plan = raw.get("plan", {})
    machine = raw.get("machine") or {}
    parts = []
    if machine.get("cores"):
        parts.append(f"{machine['cores']} cores")
    try:
        memory = float(machine.get("memory_bytes") or 0)
    except (TypeError, ValueError):
        memory = 0
    if memory:
        parts.append(f"{memory / 1024**3:.0f} GiB")
    if machine.get("kernel"):
        parts.append(f"kernel {machine['kernel']}")
    versions = ", ".join(f"{k} {v}" for k, v in (raw.get("versions") or {}).items())
    return (
        f"File `{raw.get('file') or plan.get('file')}`; {raw.get('started_at', '?')} to {raw.get('finished_at', '?')}"
        f"; machine: {', '.join(parts) or 'unknown'}; PostgreSQL: {versions or 'unknown'}"
        f"; {plan.get('repeat', '?')} repetition(s) per variant, variants interleaved."
    )


def summary(raw, measure_info):
    """summary.md: the question, the table of medians (min-max), the generated answer, notes, events."""
    names, rows = table(raw, measure_info)
    variants = variant_names(raw)
    stats = aggregate(names, rows, variants)
    items = findings(stats, names, measure_info)
    units = {c: (measure_info.get(c.split("@", 1)[0]) or {}).get("unit", "") for c in names}
    plan = raw.get("plan", {})
    out = [
        f"# Experiment `{raw.get('experiment') or plan.get('name')}`",
        "",
        f"**Question:** {raw.get('question') or plan.get('question')}",
        "",
        _context_line(raw),
        "",
        "## Variants",
        "",
        *_variant_lines(raw),
        "",
        "## Results",
        "",
        "Median over the repetitions, min\N{EN DASH}max in brackets; `-`: no value (not measured, or the variant "
        "does not run on that node).",
        "",
        "| measure | unit | better | " + " | ".join(f"`{v}`" for v in variants) + " |",
        "|---|---|---|" + "---|" * len(variants),
    ]
    for item in items:
        column = item["column"]
        cells = []
        for variant in variants:
            s = stats[column][variant]
            if s["median"] is None:
                cells.append("-")
            elif s["n"] > 1 and s["min"] != s["max"]:
                cells.append(f"{fmt(s['median'], units[column])} ({_range(s, units[column])})")
            else:
                cells.append(fmt(s["median"], units[column]))
        out.append(f"| `{column}` | {units[column]} | {item['better']} | " + " | ".join(cells) + " |")
    out += ["", "## Answer", ""]
    out += [answer_line(item, units[item["column"]]) for item in items]
    notes = _notes(raw)
    out += ["", "## Notes", ""]
    out += [f"- {n}" for n in notes] or ["- none"]
    events = _event_lines(raw)
    if events:
        out += ["", "## Events", "", *events]
    recovery = _recovery_lines(raw)
    if recovery:
        out += ["", "## Recovery", "", *recovery]
    return "\n".join(out) + "\n"


def _range(stats, unit):
    """Min to max joined by an en dash; the unit only once when both ends share it (the median shows it)."""
    low, high = fmt(stats["min"], unit), fmt(stats["max"], unit)
    low_unit, high_unit = low.partition(" ")[2], high.partition(" ")[2]
    if low_unit == high_unit:
        low, high = low.partition(" ")[0], high.partition(" ")[0]
    return f"{low}\N{EN DASH}{high}"
