"""Benchmark: time `ansible-playbook site.yml` and a no-op re-run.

Runs the playbook twice in a row and prints, for each run, the wall time and
the PLAY RECAP's changed/failed counts, then the ratio second/first. Run it on
a machine where the lab does not exist yet to measure a cold build; on an
existing lab both runs are reconfiguration runs. The second run must report
changed=0; the script exits non-zero when it does not (or a run failed).

Usage: .venv/bin/python benchmarks/site_rerun.py [-i inventory/lab] [-- extra ansible-playbook args]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+).*?failed=(?P<failed>\d+)", re.M)


def run_playbook(inventory: str, playbook: str, extra: list[str]) -> tuple[float, int, int]:
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", inventory, *extra]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    recap = [m.groupdict() for m in RECAP.finditer(proc.stdout)]
    if proc.returncode != 0 or not recap:
        sys.stdout.write(proc.stdout[-4000:])
        sys.stderr.write(proc.stderr[-4000:])
    changed = sum(int(r["changed"]) for r in recap)
    failed = sum(int(r["failed"]) for r in recap) + (proc.returncode != 0)
    return seconds, changed, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--inventory", default="inventory/lab")
    parser.add_argument("--playbook", default="site.yml")
    parser.add_argument("extra", nargs="*", help="extra ansible-playbook arguments (after --)")
    args = parser.parse_args()

    first = run_playbook(args.inventory, args.playbook, args.extra)
    second = run_playbook(args.inventory, args.playbook, args.extra)
    for label, (seconds, changed, failed) in (("first run", first), ("no-op re-run", second)):
        print(f"{label:<13} {seconds:8.1f} s  changed={changed} failed={failed}")
    print(f"ratio re-run/first: {second[0] / first[0]:.2f}")
    ok = first[2] == 0 and second[2] == 0 and second[1] == 0
    if not ok:
        print("FAIL: a run failed or the re-run changed something", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
