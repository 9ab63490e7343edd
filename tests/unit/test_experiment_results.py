"""Experiment results (plugins/module_utils/_experiment_results.py): medians, min-max, results.csv, summary.md.

The property test builds raw.json data from random numbers, then reads results.csv back with the csv
module and recomputes the medians with ``statistics`` - independently of the code under test - and
checks that every variant the generated answer calls best has the best median, that no better one
was left out, and that the printed ratios are those of the medians.
"""

from __future__ import annotations

import csv
import io
import random
import re
import statistics

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _experiment_results as results
from ansible_collections.inventium.logical_replication.plugins.module_utils._experiment_catalog import CATALOG

INFO = {name: {k: v for k, v in entry.items() if k != "source"} for name, entry in CATALOG.items()}
ANSWER = re.compile(r"^- `(?P<column>[^`]+)` \((?P<unit>[^,]*), (?P<better>[^)]*)\): (?P<rest>.*)$")


def raw_from(values, measures, nodes=("subscriber1", "subscriber2"), notes=(), run_notes=None, events=None):
    """raw.json from {variant: [measures of repetition 1, of repetition 2, ...]} (runs interleaved)."""
    variants = list(values)
    repeat = max(len(v) for v in values.values())
    runs = []
    for rep in range(repeat):
        for variant in variants:
            if rep < len(values[variant]):
                runs.append(
                    {
                        "index": len(runs) + 1,
                        "variant": variant,
                        "repetition": rep + 1,
                        "measures": values[variant][rep],
                        "notes": (run_notes or {}).get((variant, rep + 1), []),
                        "events": (events or {}).get((variant, rep + 1), []),
                    }
                )
    notes_of_runs = [n for run in runs for n in run["notes"]]
    return {
        "notes": list(dict.fromkeys(list(notes) + notes_of_runs)),  # what the runner writes
        "experiment": "demo",
        "question": "Which variant is best?",
        "file": "experiments/demo.yml",
        "started_at": "2026-12-03T15:00:00Z",
        "finished_at": "2026-12-03T15:10:00Z",
        "machine": {"cores": "2", "memory_bytes": str(24 * 1024**3), "kernel": "6.1.0"},  # strings from Jinja
        "versions": {"publisher": "15.10", "subscriber1": "15.10", "subscriber2": "17.6"},
        "plan": {
            "name": "demo",
            "file": "experiments/demo.yml",
            "repeat": repeat,
            "nodes": list(nodes),
            "measures": list(measures),
            "notes": list(notes),
            "variants": [{"name": v, "nodes": list(nodes)} for v in variants],
        },
        "runs": runs,
    }


def parse_answer(text):
    """{column: (better, [best variants], {other variant: ratio or None})} from summary.md's answer."""
    section = text.split("## Answer\n", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.strip().splitlines():
        match = ANSWER.match(line)
        assert match, line
        rest = match["rest"]
        best = []
        others = {}
        found = re.match(r"best ((?:`[^`]+`(?: and )?)+)", rest)
        if found:
            best = re.findall(r"`([^`]+)`", found.group(1))
            for variant, ratio in re.findall(r"`([^`]+)` [^;,(]+ \((\d+\.\d\dx|no ratio)\)", rest):
                others[variant] = None if ratio == "no ratio" else float(ratio[:-1])
        out[match["column"]] = (match["better"], best, others)
    return out


def csv_medians(text):
    """{column: {variant: median}} from results.csv, with the csv and statistics modules only."""
    rows = list(csv.DictReader(io.StringIO(text)))
    out = {}
    for column in rows[0]:
        if column in ("variant", "repetition"):
            continue
        per_variant = {}
        for row in rows:
            if row[column] != "":
                per_variant.setdefault(row["variant"], []).append(float(row[column]))
        out[column] = {v: statistics.median(vals) for v, vals in per_variant.items()}
    return out


# ----------------------------------------------------------------------------------- aggregation


def test_median_and_min_max_skip_missing_values():
    assert results.median([3, None, 1, 2]) == 2
    assert results.median([4, 1, 3, 2]) == 2.5
    assert results.median([None]) is None
    assert results.min_max([3, None, 1.5, 2]) == (1.5, 3)
    assert results.min_max([]) == (None, None)
    assert results.median([True, 5]) == 5, "booleans are not numbers"


def test_columns_expand_per_node_measures():
    plan = {"measures": ["commit_visible_seconds", "publisher_tps"], "nodes": ["a", "b"]}
    assert results.columns(plan, INFO) == [
        ("commit_visible_seconds@a", "commit_visible_seconds", "a"),
        ("commit_visible_seconds@b", "commit_visible_seconds", "b"),
        ("publisher_tps", "publisher_tps", None),
    ]


def test_csv_has_one_row_per_run_and_one_column_per_measure_and_node():
    raw = raw_from(
        {
            "off": [{"commit_visible_seconds": {"subscriber1": 2.5, "subscriber2": 2.0}, "publisher_tps": 100}] * 2,
            "parallel": [{"commit_visible_seconds": {"subscriber1": None, "subscriber2": 0.5}, "publisher_tps": 90.5}]
            * 2,
        },
        ["commit_visible_seconds", "publisher_tps"],
    )
    names, rows = results.table(raw, INFO)
    text = results.csv_text(names, rows)
    lines = text.splitlines()
    assert (
        lines[0]
        == "variant,repetition,commit_visible_seconds@subscriber1,commit_visible_seconds@subscriber2,publisher_tps"
    )
    assert lines[1:] == [
        "off,1,2.5,2,100",
        "parallel,1,,0.5,90.5",
        "off,2,2.5,2,100",
        "parallel,2,,0.5,90.5",
    ]


def test_aggregate_medians_and_ranges():
    raw = raw_from(
        {"a": [{"publisher_tps": 10}, {"publisher_tps": 30}, {"publisher_tps": 20}], "b": [{"publisher_tps": 5}]},
        ["publisher_tps"],
    )
    names, rows = results.table(raw, INFO)
    stats = results.aggregate(names, rows, results.variant_names(raw))
    assert stats["publisher_tps"]["a"] == {"median": 20, "min": 10, "max": 30, "n": 3, "values": [10, 30, 20]}
    assert stats["publisher_tps"]["b"]["median"] == 5


# ----------------------------------------------------------------------------------- the answer


def summary_of(values, measures, **kwargs):
    raw = raw_from(values, measures, **kwargs)
    return results.summary(raw, INFO), raw


def test_lower_is_better_names_the_smallest_median_and_ratios():
    text, _notes = summary_of(
        {
            "off": [{"commit_visible_seconds": {"subscriber1": 4.0, "subscriber2": 4.0}}],
            "on": [{"commit_visible_seconds": {"subscriber1": 2.0, "subscriber2": 1.0}}],
            "parallel": [{"commit_visible_seconds": {"subscriber2": 0.5}}],
        },
        ["commit_visible_seconds"],
    )
    answer = parse_answer(text)
    assert answer["commit_visible_seconds@subscriber1"] == ("lower is better", ["on"], {"off": 2.0})
    assert answer["commit_visible_seconds@subscriber2"] == ("lower is better", ["parallel"], {"on": 2.0, "off": 8.0})


def test_higher_is_better_and_ties():
    text, _notes = summary_of(
        {"a": [{"publisher_tps": 100}], "b": [{"publisher_tps": 100}], "c": [{"publisher_tps": 25}]},
        ["publisher_tps"],
    )
    assert parse_answer(text)["publisher_tps"] == ("higher is better", ["a", "b"], {"c": 4.0})
    assert "(tied)" in text


def test_equal_medians_say_so():
    text, _notes = summary_of({"a": [{"publisher_tps": 7}], "b": [{"publisher_tps": 7}]}, ["publisher_tps"])
    assert "every variant has the same median" in text


def test_not_ranked_measures_and_single_variants():
    text, _notes = summary_of(
        {"a": [{"stream_bytes": {"subscriber1": 1024}, "publisher_tps": 3}], "b": [{"stream_bytes": {}}]},
        ["stream_bytes", "publisher_tps"],
        nodes=("subscriber1",),
    )
    answer = parse_answer(text)
    assert answer["stream_bytes@subscriber1"] == ("not ranked", [], {})
    assert "`a` 1 KiB" in text
    assert answer["publisher_tps"][1] == []
    assert "only `a` 3 tx/s has values, nothing to compare" in text


def test_zero_best_has_no_ratio():
    text, _notes = summary_of(
        {"a": [{"spill_bytes": {"s": 0}}], "b": [{"spill_bytes": {"s": 5000}}]}, ["spill_bytes"], nodes=("s",)
    )
    assert parse_answer(text)["spill_bytes@s"] == ("lower is better", ["a"], {"b": None})


def test_spread_larger_than_difference_is_noted():
    noisy, _notes = summary_of(
        {"a": [{"publisher_tps": 100}, {"publisher_tps": 140}], "b": [{"publisher_tps": 118}, {"publisher_tps": 124}]},
        ["publisher_tps"],
    )
    assert "Spread between repetitions (40 tx/s) is larger than the difference between the best two variants" in noisy
    clear, _notes = summary_of(
        {"a": [{"publisher_tps": 100}, {"publisher_tps": 102}], "b": [{"publisher_tps": 200}, {"publisher_tps": 205}]},
        ["publisher_tps"],
    )
    assert "Spread between repetitions" not in clear


def test_summary_lists_question_table_notes_and_events():
    text, _notes = summary_of(
        {"off": [{"publisher_tps": 10}, {"publisher_tps": 12}], "on": [{"publisher_tps": 20}, {"publisher_tps": 22}]},
        ["publisher_tps"],
        notes=["variant parallel does not run on subscriber1: it requires subscriber_major 16"],
        run_notes={("on", 1): ["pgbench warned"], ("on", 2): ["pgbench warned"]},
        events={("off", 2): [{"ts": 1.0, "node": "subscriber1", "what": "wal_status reserved -> lost"}]},
    )
    assert "**Question:** Which variant is best?" in text
    assert "| `publisher_tps` | tx/s | higher | 11 tx/s (10\N{EN DASH}12) | 21 tx/s (20\N{EN DASH}22) |" in text
    assert "- variant parallel does not run on subscriber1: it requires subscriber_major 16" in text
    assert "- pgbench warned (runs: on#1, on#2)" in text
    assert text.count("pgbench warned") == 1, "the runner's copy in raw.notes is not listed twice"
    assert "- off#2 subscriber1: wal_status reserved -> lost" in text
    assert "PostgreSQL: publisher 15.10, subscriber1 15.10, subscriber2 17.6" in text


def test_summary_reports_each_recovery_and_its_proof():
    raw = raw_from({"small": [{"publisher_tps": 1}, {"publisher_tps": 2}]}, ["publisher_tps"])
    lost = {"subscription": "subscriber1_sub", "slot": "subscriber1_sub", "error": "wal_status lost"}
    raw["runs"][0]["recovery"] = {
        "subscriber1": {
            **lost,
            "equal": True,
            "caught_up_seconds": 12.4,
            "recreated_by": "subscriber role (playbooks/experiment_recover.yml)",
            "tables": [{"table": "public.books", "equal": True}, {"table": "public.authors", "equal": True}],
        }
    }
    raw["runs"][1]["recovery"] = {
        "subscriber1": {
            **lost,
            "equal": False,
            "problems": ["row counts differ"],
            "recreated_by": "x",
            "tables": [{"table": "public.books", "equal": False}, {"table": "public.authors", "equal": True}],
        },
        "subscriber2": dict(lost),  # the runner died before comparing
    }
    text = results.summary(raw, INFO)
    recovery = text.split("## Recovery", 1)[1]
    assert (
        "- small#1 subscriber1: slot subscriber1_sub lost (wal_status lost); subscription subscriber1_sub re-created"
        " by subscriber role (playbooks/experiment_recover.yml); proven equal: 2 table(s), row counts and checksums"
        " match the publisher (caught up after 12 s)" in recovery
    )
    assert (
        "- small#2 subscriber1: slot subscriber1_sub lost (wal_status lost); subscription subscriber1_sub" in recovery
    )
    assert "NOT equal: public.books; row counts differ" in recovery
    assert "- small#2 subscriber2: slot subscriber1_sub lost (wal_status lost); NOT recovered" in recovery
    assert "## Recovery" not in results.summary(raw_from({"a": [{"publisher_tps": 1}]}, ["publisher_tps"]), INFO)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.41234, "s", "0.412 s"),
        (1234.5, "rows/s", "1,234 rows/s"),  # round-half-even of the last digit is fine
        (3 * 1024**2, "bytes", "3 MiB"),
        (512, "bytes", "512 B"),
        (7, "count", "7"),
        (0.84, "ratio", "0.84"),
        (None, "s", "-"),
    ],
)
def test_format(value, unit, text):
    assert results.fmt(value, unit) in (text, text.replace("1,234", "1,235"))


# ----------------------------------------------------------------------------------- property


@pytest.mark.parametrize("seed", range(200))
def test_generated_answer_agrees_with_the_csv(seed):
    rng = random.Random(seed)
    nodes = ("subscriber1", "subscriber2")[: rng.randint(1, 2)]
    variants = rng.sample(["off", "on", "parallel", "v4", "x"], rng.randint(2, 5))
    measures = rng.sample(
        ["commit_visible_seconds", "publisher_tps", "spill_bytes", "apply_rows_per_second", "stream_count"], 3
    )
    repeat = rng.randint(1, 4)

    def number():
        if rng.random() < 0.1:
            return None
        if rng.random() < 0.1:
            return rng.choice([0, 1, 2])  # ties and zeros
        return round(rng.uniform(0, 1000), rng.randint(0, 4))

    values = {}
    for variant in variants:
        runs = []
        for _i in range(repeat):
            measured = {}
            for m in measures:
                measured[m] = {n: number() for n in nodes} if INFO[m]["per_node"] else number()
            runs.append(measured)
        values[variant] = runs
    raw = raw_from(values, measures, nodes=nodes)
    names, rows = results.table(raw, INFO)
    csv_text = results.csv_text(names, rows)
    medians = csv_medians(csv_text)
    answer = parse_answer(results.summary(raw, INFO))
    assert set(answer) == set(names[2:])
    for column, (_words, best, others) in answer.items():
        better = INFO[column.split("@")[0]]["better"]
        col = medians.get(column, {})
        if better == "none" or len(col) < 2:
            assert best == []
            continue
        pick = min if better == "lower" else max
        top = pick(col.values())
        assert sorted(best) == sorted(v for v, m in col.items() if m == top), (column, col, best)
        assert set(others) == set(col) - set(best)
        for variant, ratio in others.items():
            value = col[variant]
            num, den = (value, top) if better == "lower" else (top, value)
            if den == 0:
                assert ratio is None
            else:
                assert ratio == pytest.approx(num / den, abs=0.006)
