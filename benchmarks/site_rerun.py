"""Benchmark: time `ansible-playbook site.yml` and its no-op re-runs.

Runs the playbook once (the first run: a cold build on a machine without the lab, otherwise a
reconfiguration run) and then ``--reruns`` more times, and prints, for each run, the wall time,
the PLAY RECAP's changed/failed counts and the number of tasks that ran (``ok`` summed over the
hosts), then the median re-run time and the ratio median re-run / first. Every re-run must report
changed=0; the script exits non-zero when one does not (or a run failed). With ``--profile`` the
last re-run uses Ansible's ``profile_tasks`` callback and the slowest tasks are printed (where a
no-op run spends its time). Compare ratios from one invocation; on the shared 2-core VM absolute
seconds move with the load of other jobs.

Usage: .venv/bin/python benchmarks/site_rerun.py [-i inventory/lab] [--reruns 1] [--profile]
       [-- extra ansible-playbook args]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+).*?failed=(?P<failed>\d+)", re.M)
PROFILE_LINE = re.compile(r"^(?P<task>.+?) -+ (?P<seconds>\d+\.\d+)s$", re.M)


def run_playbook(
    inventory: str, playbook: str, extra: list[str], profile: bool = False
) -> tuple[float, int, int, int, str]:
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", inventory, *extra]
    env = dict(os.environ)
    if profile:
        env.update({"ANSIBLE_CALLBACKS_ENABLED": "profile_tasks", "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "15"})
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, env=env)
    seconds = time.monotonic() - start
    recap = [m.groupdict() for m in RECAP.finditer(proc.stdout)]
    if proc.returncode != 0 or not recap:
        sys.stdout.write(proc.stdout[-4000:])
        sys.stderr.write(proc.stderr[-4000:])
    changed = sum(int(r["changed"]) for r in recap)
    failed = sum(int(r["failed"]) for r in recap) + (proc.returncode != 0)
    tasks = sum(int(r["ok"]) for r in recap)
    return seconds, changed, failed, tasks, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--inventory", default="inventory/lab")
    parser.add_argument("--playbook", default="site.yml")
    parser.add_argument("--reruns", type=int, default=1, help="no-op re-runs after the first run (default 1)")
    parser.add_argument("--profile", action="store_true", help="print the slowest tasks of the last re-run")
    parser.add_argument("extra", nargs="*", help="extra ansible-playbook arguments (after --)")
    args = parser.parse_args()

    runs = [run_playbook(args.inventory, args.playbook, args.extra)]
    for index in range(args.reruns):
        last = index == args.reruns - 1
        runs.append(run_playbook(args.inventory, args.playbook, args.extra, profile=args.profile and last))
    for index, (seconds, changed, failed, tasks, _out) in enumerate(runs):
        label = "first run" if index == 0 else f"no-op re-run {index}"
        print(f"{label:<15} {seconds:8.1f} s  changed={changed} failed={failed} tasks={tasks}")
    reruns = [run[0] for run in runs[1:]]
    if reruns:
        median = statistics.median(reruns)
        print(f"median re-run {median:8.1f} s  ratio re-run/first: {median / runs[0][0]:.2f}")
    if args.profile and len(runs) > 1:
        print("slowest tasks of the last re-run (profile_tasks):")
        for match in PROFILE_LINE.finditer(runs[-1][4].split("TASKS RECAP", 1)[-1]):
            print(f"  {float(match['seconds']):5.2f} s  {match['task'].strip()}")
    ok = all(run[2] == 0 for run in runs) and all(run[1] == 0 for run in runs[1:])
    if not ok:
        print("FAIL: a run failed or a re-run changed something", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
