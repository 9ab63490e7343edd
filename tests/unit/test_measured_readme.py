"""scripts/measured_readme.py: README's "What the lab has measured" rebuilt from the runs' summary.md and raw.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("measured_readme", REPO_ROOT / "scripts" / "measured_readme.py")
measured_readme = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(measured_readme)

TABLE = [
    "| measure | unit | better | `off` | `on` |",
    "|---|---|---|---|---|",
    "| `spill_bytes@subscriber1` | bytes | lower | 117 MiB | 0 B |",
]


def write_run(results: Path, name: str, started: str, finished: str, notes: list[str], recovery: list[str]) -> None:
    run = results / name / "latest"
    run.mkdir(parents=True)
    raw = {
        "question": f"What does {name} do?",
        "started_at": started,
        "finished_at": finished,
        "machine": {"cores": 2, "memory_bytes": 24 * 1024**3, "kernel": "Linux 6.1"},
        "versions": {"publisher": "15.18", "subscriber1": "15.20"},
        "plan": {"repeat": 3},
    }
    (run / "raw.json").write_text(json.dumps(raw))
    summary = [
        f"# Experiment `{name}`",
        "",
        "## Results",
        "",
        "Median over the repetitions ...",
        "",
        *TABLE,
        "",
        "## Answer",
        "",
        "- `spill_bytes@subscriber1` (bytes, lower is better): best `on` 0 B; `off` 117 MiB (no ratio).",
        "",
        "## Notes",
        "",
        *(notes or ["- none"]),
        "",
    ]
    if recovery:
        summary += ["## Recovery", "", *recovery, ""]
    summary += ["## Plots", "", "![x](x.png)"]
    (run / "summary.md").write_text("\n".join(summary) + "\n")


def test_section_is_copied_from_the_runs_in_story_order(tmp_path):
    results = tmp_path / "experiments"
    write_run(results, "zeta", "2026-12-03T10:00:00Z", "2026-12-03T10:00:30Z", [], [])
    write_run(
        results,
        "slot_limit",
        "2026-12-03T09:00:00Z",
        "2026-12-03T09:05:07Z",
        ["- a note"],
        ["- 64MB#1 subscriber1: slot s lost; proven equal"],
    )
    write_run(results, "streaming", "2026-12-03T08:00:00Z", "2026-12-03T08:04:34Z", [], [])
    (results / "unfinished").mkdir()  # no latest/: not listed
    readme = tmp_path / "README.md"
    readme.write_text("# Top\n\n## What the lab has measured\n\nold text\n\n## Measured here\n\nkept\n")

    assert measured_readme.main(["--results", str(results), "--readme", str(readme), "--check"]) == 1
    assert measured_readme.main(["--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()

    assert text.startswith("# Top\n\n## What the lab has measured\n")
    assert text.endswith("## Measured here\n\nkept\n")
    assert "old text" not in text
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert headings == ["### `streaming`", "### `slot_limit`", "### `zeta`"]
    assert "unfinished" not in text
    streaming = text.split("### `streaming`")[1].split("### ")[0]
    assert "**What does streaming do?**" in streaming
    assert (
        "2026-12-03, 2 cores, 24 GiB, Linux 6.1; PostgreSQL publisher 15.18, subscriber1 15.20; 3 repetition(s)"
        " per variant, interleaved; the experiment took 4 min 34 s." in streaming
    )
    assert "\n".join(TABLE) in streaming
    assert "Answer:\n\n- `spill_bytes@subscriber1`" in streaming
    assert "Notes:" not in streaming  # "- none" is not copied
    assert "Median over the repetitions ..." not in streaming  # said once in the intro
    slot_limit = text.split("### `slot_limit`")[1].split("### ")[0]
    assert "Notes:\n\n- a note" in slot_limit
    assert "Recovery:\n\n- 64MB#1 subscriber1: slot s lost; proven equal" in slot_limit
    assert "![x]" not in text
    # 274 + 307 + 30 seconds
    assert "Together the 3 experiments took 10 min 11 s." in text
    assert measured_readme.main(["--results", str(results), "--readme", str(readme), "--check"]) == 0
