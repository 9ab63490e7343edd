# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rewrite README's "What the lab has measured" from the experiments' latest results.

After ``make experiment E=<name>`` for each experiment, run:

    .venv/bin/python scripts/measured_readme.py            # rewrites README.md in place
    .venv/bin/python scripts/measured_readme.py --check    # exit 1 when README.md would change

For every experiment with a ``.lab/experiments/<name>/latest/`` run, the section gets the
question, the machine, the PostgreSQL versions, the repetitions and how long the experiment took
(``started_at`` to ``finished_at`` of its raw.json), then the tables, the answer, the notes and the
recoveries of its generated ``summary.md`` — copied, never written by hand. Experiments are listed
in the order of ``ORDER``, then any others by name. The README text between the heading
``## What the lab has measured`` and the next ``## `` heading is replaced.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## What the lab has measured"
# The order in which the README tells the story: streaming and memory first, then operations.
ORDER = (
    "streaming",
    "initial_sync",
    "decoding_memory",
    "pause_resume",
    "slot_limit",
    "row_filter_cost",
    "apply_commit",
    "throttle",
    "replica_identity",
)
SUMMARY_PARTS = ("Results", "Answer", "Notes", "Recovery")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s"


def summary_parts(text: str) -> dict[str, list[str]]:
    """``summary.md`` split at its ``## `` headings: {heading: lines}."""
    parts: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            parts[current] = []
        elif current is not None:
            parts[current].append(line)
    return parts


def experiment_section(name: str, run_dir: Path) -> tuple[list[str], float]:
    """README lines of one experiment and the seconds it took."""
    raw = json.loads((run_dir / "raw.json").read_text(encoding="utf-8"))
    parts = summary_parts((run_dir / "summary.md").read_text(encoding="utf-8"))
    took = (parse_time(raw["finished_at"]) - parse_time(raw["started_at"])).total_seconds()
    machine = raw.get("machine") or {}
    memory = float(machine.get("memory_bytes") or 0) / 1024**3
    versions = ", ".join(f"{node} {version}" for node, version in (raw.get("versions") or {}).items())
    repeat = (raw.get("plan") or {}).get("repeat", "?")
    lines = [
        f"### `{name}`",
        "",
        f"**{raw.get('question') or (raw.get('plan') or {}).get('question')}**",
        "",
        f"{raw['started_at'][:10]}, {machine.get('cores', '?')} cores, {memory:.0f} GiB, {machine.get('kernel', '?')};"
        f" PostgreSQL {versions}; {repeat} repetition(s) per variant, interleaved; the experiment took"
        f" {minutes(took)}.",
        "",
    ]
    lines += [line for line in parts.get("Results", []) if line.startswith("|")]
    for part in SUMMARY_PARTS[1:]:
        items = [line for line in parts.get(part, []) if line.startswith("- ") and line != "- none"]
        if items:
            lines += ["", f"{part}:", "", *items]
    return [*lines, ""], took


def measured_section(results: Path) -> list[str]:
    names = [n for n in ORDER if (results / n / "latest").is_dir()]
    names += sorted(p.name for p in results.glob("*") if (p / "latest").is_dir() and p.name not in ORDER)
    sections, total = [], 0.0
    for name in names:
        lines, took = experiment_section(name, results / name / "latest")
        sections += lines
        total += took
    intro = [
        HEADING,
        "",
        "Each experiment below ran end to end on this machine with `make experiment E=<name>` at its default",
        "repetitions (variants interleaved). Every table, answer and note is copied from the run's generated",
        "`summary.md` by `scripts/measured_readme.py`: medians with min\N{EN DASH}max in brackets, `-` where a variant",
        "does not run on a node; an answer says when the spread between repetitions is larger than the",
        "difference it ranks. The plots and raw.json are in `.lab/experiments/<name>/latest/`.",
        "",
    ]
    closing = [f"Together the {len(names)} experiments took {minutes(total)}.", ""] if names else []
    return intro + sections + closing


def rewrite(readme: str, section: list[str]) -> str:
    start = readme.index(HEADING)
    following = re.compile(r"^## ", re.M)
    match = following.search(readme, start + len(HEADING))
    end = match.start() if match else len(readme)
    return readme[:start] + "\n".join(section) + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / ".lab" / "experiments")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when the README would change")
    args = parser.parse_args(argv)
    old = args.readme.read_text(encoding="utf-8")
    new = rewrite(old, measured_section(args.results))
    if args.check:
        return int(new != old)
    if new != old:
        args.readme.write_text(new, encoding="utf-8")
    print(f"{args.readme}: {'rewritten' if new != old else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
