"""The single test entry point behind `make test`.

Runs the stages in order, prints each stage's time, and ends with one line
``summary: N passed, N failed, N skipped``. pytest stages contribute their
test counts; every other stage (a linter, a Molecule scenario) counts as one
test. A failing stage does not stop the later ones, so one run shows every
problem; the exit status is non-zero when anything failed.

When the lab's stages (integration-lab, molecule-lab) run together with
stages that do not touch the lab, the latter run in a second process beside
them (see BESIDE_THE_LAB), sanity and the unit tests after the lab's stages
in the first (AFTER_THE_LAB); --serial or TEST_SERIAL=1 runs one after the other.

Usage: tests/run_all.py [--stages ruff,ansible-lint,...] [--serial]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from support.ansible import ansible_env  # tests/ is this script's directory: on sys.path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".build"
COLLECTION_NAMESPACE = "inventium"
COLLECTION_NAME = "logical_replication"
VENV_BIN = Path(sys.executable).parent
# The tools' environment: the venv's bin first on PATH (molecule and ansible-lint call Ansible by
# name), the checkout's ansible.cfg, and nothing of the caller's dropped (pytest reads PG_VERSIONS).
TOOLS = {"callback": None, "drop": (), "venv_on_path": True}


@dataclass
class StageResult:
    name: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    note: str = ""
    failures: list[str] = field(default_factory=list)


def run(cmd: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> int:
    print(f"$ {' '.join(cmd)}", flush=True)
    return subprocess.call(cmd, cwd=cwd, env=env)


def single(name: str, rc: int, note: str = "") -> StageResult:
    return StageResult(name, passed=int(rc == 0), failed=int(rc != 0), note=note or f"exit {rc}")


def pytest_command(report: Path, path: str | tuple[str, ...], extra: list[str] | None = None) -> list[str]:
    paths = [path] if isinstance(path, str) else list(path)
    return [str(VENV_BIN / "python"), "-m", "pytest", *paths, "-ra", f"--junitxml={report}", *(extra or [])]


def junit_path(name: str) -> Path:
    report = BUILD / f"junit-{name}.xml"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    return report


def pytest_result(name: str, rc: int, report: Path, note: str = "") -> StageResult:
    if rc == 5:  # pytest: no tests collected — not a failure, just nothing to count
        return StageResult(name, note="no tests collected")
    if not report.exists():
        return single(name, rc or 1, "pytest produced no report")
    passed, failed, skipped = junit_counts(report)
    result = StageResult(name, passed=passed, failed=failed, skipped=skipped, note=note or f"exit {rc}")
    result.failures = junit_failures(report)
    if rc not in (0, 5) and failed == 0:
        result.failed = 1  # e.g. a crash in collection or a fixture error outside any test
    return result


def pytest_stage(name: str, path: str | tuple[str, ...], extra: list[str] | None = None) -> StageResult:
    report = junit_path(name)
    rc = run(pytest_command(report, path, extra), env=ansible_env(**TOOLS))
    return pytest_result(name, rc, report)


def stage_prepare() -> StageResult:
    """Docker engine and the lab's images, through the collection's own roles."""
    rc = run(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/images.yml", "-i", "inventory/lab"], env=ansible_env(**TOOLS)
    )
    return single("prepare", rc)


def stage_ruff() -> StageResult:
    rc = run([str(VENV_BIN / "ruff"), "check", "."], env=ansible_env(**TOOLS))
    rc |= run([str(VENV_BIN / "ruff"), "format", "--check", "."], env=ansible_env(**TOOLS))
    return single("ruff", rc)


def stage_ansible_lint() -> StageResult:
    return single("ansible-lint", run([str(VENV_BIN / "ansible-lint")], env=ansible_env(**TOOLS)))


def collection_files() -> list[str]:
    """Files that make up the collection: tracked plus untracked-but-not-ignored."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    files = []
    for rel in filter(None, out.split("\0")):
        path = ROOT / rel
        # The collections/ symlink makes the checkout resolvable as a collection;
        # it is not part of the collection itself.
        if rel.startswith("collections/") or not path.exists():
            continue
        files.append(rel)
    return files


def provide_pip_bootstrap() -> None:
    """Cache tests/sanity/get_pip_offline.py where ansible-test looks for get-pip."""
    import ansible_test  # the venv's; imported here because only this stage needs it

    source = (Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
    match = re.search(r"pip='([0-9.]+)'", source)
    if not match:
        raise RuntimeError("cannot find the pip version ansible-test bootstraps; update provide_pip_bootstrap()")
    cache = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{match.group(1).replace('.', '_')}.py"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "tests" / "sanity" / "get_pip_offline.py", cache)


def stage_sanity() -> StageResult:
    """ansible-test sanity on a copy laid out as ansible_collections/<ns>/<name>.

    ansible-test insists on that layout; a copy (not a symlink) keeps the
    checkout itself free of ansible-test's output and its git state out of the way.
    """
    tree = BUILD / "sanity" / "ansible_collections" / COLLECTION_NAMESPACE / COLLECTION_NAME
    shutil.rmtree(tree.parent.parent, ignore_errors=True)
    for rel in collection_files():
        dest = tree / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest, follow_symlinks=False)
    # ansible-test lists a collection's files with git when it sits in a repo;
    # give the copy its own index so the checkout's .gitignore does not hide it.
    subprocess.run(["git", "init", "-q", "."], cwd=tree, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tree, check=True)
    provide_pip_bootstrap()
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    # --venv would bootstrap pip from a host outside the package registries;
    # the default (local) mode uses this venv and builds the per-test venvs
    # from PyPI.
    rc = run(
        [str(VENV_BIN / "ansible-test"), "sanity", "--requirements", "--python", python, "--color", "no"],
        cwd=tree,
        env=ansible_env(**TOOLS),
    )
    return single("sanity", rc)


def stage_unit() -> StageResult:
    return pytest_stage("unit", "tests/unit")


def stage_integration_lab() -> StageResult:
    """The tests marked ``lab``: they build the lab and run it through its reconfigurations (one at a time)."""
    return pytest_stage("integration-lab", "tests/integration", ["-m", "lab and not lab18", "--durations=15"])


def stage_integration_docker() -> StageResult:
    """The tests marked ``docker`` but not ``lab``: containers, images and an InfluxDB of their own."""
    return pytest_stage(
        "integration-docker", "tests/integration", ["-m", "docker and not lab and not lab18", "--durations=10"]
    )


SERVERS_MARKS = "not docker and not lab and not lab18"
# Server tests that run in a stage of their own, in the lab's lane after its stages (see AFTER_THE_LAB), to keep
# the two lanes even. A clean-clone CI run with the first two files here: the lab's lane ~1,128 s (these 218 s),
# the other ~1,185 s; then test_schema_change_playbook and most of test_experiment_run went to two pairs (in the next
# run 146 -> 63 s and 81 -> 47 s). With test_failover_slots.py (~41-46 s) here too, two runs measured the lab's lane
# the longer (~1,093 / ~1,028 s and ~1,153 / ~1,102 s): it went back to integration-servers.
SERVER_TESTS_OF_THE_LAB_LANE = (
    "tests/integration/test_schema_change_playbook.py",
    "tests/integration/test_switchover.py",
)


def stage_integration_servers() -> StageResult:
    """The tests that need only throwaway PostgreSQL servers (random ports, nothing of the lab)."""
    ignored = [f"--ignore={path}" for path in SERVER_TESTS_OF_THE_LAB_LANE]
    return pytest_stage("integration-servers", "tests/integration", ["-m", SERVERS_MARKS, "--durations=15", *ignored])


def stage_integration_servers_late() -> StageResult:
    """SERVER_TESTS_OF_THE_LAB_LANE: integration-servers' tests that the lab's lane runs (servers of their own)."""
    extra = ["-m", SERVERS_MARKS, "--durations=5"]
    return pytest_stage("integration-servers-late", SERVER_TESTS_OF_THE_LAB_LANE, extra)


def stage_integration_lab18() -> StageResult:
    """The tests marked ``lab18`` (opt-in, never a default stage): the PostgreSQL 18 lab beside the default one."""
    return pytest_stage("integration-lab18", "tests/integration", ["-m", "lab18", "--durations=10"])


def junit_counts(report: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) of a pytest junit report."""
    total = failed = skipped = 0
    # The report is the file pytest just wrote for us, not untrusted input.
    for suite in ET.parse(report).getroot().iter("testsuite"):  # noqa: S314
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return total - failed - skipped, failed, skipped


def junit_failures(report: Path, limit: int = 400) -> list[str]:
    """``test id: first lines of its failure`` for each failed test of a junit report.

    The summary repeats them last, so that whoever reads only the end of a long log (CI's
    excerpt) still sees why each test failed, not just its name.
    """
    lines = []
    # The report is the file pytest just wrote for us, not untrusted input.
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
        for problem in (*case.findall("failure"), *case.findall("error")):
            text = " ".join((problem.get("message") or problem.text or "").split())
            test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
            lines.append(f"{test_id}: {text[:limit]}")
    return lines


def molecule_stage(scenario: str) -> StageResult:
    """One Molecule scenario with `molecule test`.

    It counts as one test for its own steps (create, converge, idempotence, ...) plus the counts
    of its Testinfra tests, read from the junit report the verifier's pytest writes
    (PYTEST_ADDOPTS reaches it through Molecule's environment).
    """
    result = StageResult(f"molecule-{scenario}")
    report = junit_path(f"molecule-{scenario}")
    env = ansible_env(**TOOLS)
    env["PYTEST_ADDOPTS"] = f"{env.get('PYTEST_ADDOPTS', '')} --junitxml={report}".strip()
    rc = run([str(VENV_BIN / "molecule"), "test", "-s", scenario], env=env)
    passed, failed, skipped = 0, 0, 0
    if report.exists():
        passed, failed, skipped = junit_counts(report)
        result.failures += junit_failures(report)
    result.passed = passed + int(rc == 0)
    result.failed = failed + int(rc != 0 and failed == 0)
    result.skipped = skipped
    result.note = f"exit {rc}; testinfra: {passed} passed, {failed} failed"
    return result


STAGES = {
    "ruff": stage_ruff,
    "ansible-lint": stage_ansible_lint,
    "sanity": stage_sanity,
    "unit": stage_unit,
    "prepare": stage_prepare,
    "integration-lab": stage_integration_lab,
    "integration-docker": stage_integration_docker,
    "integration-servers": stage_integration_servers,
    "integration-servers-late": stage_integration_servers_late,
    "molecule-hosts": lambda: molecule_stage("hosts"),
    "molecule-lab": lambda: molecule_stage("lab"),
}
# Stages only run when named (--stages): CI's time is tight, and lab18 builds a lab of its own.
OPT_IN_STAGES = {"integration-lab18": stage_integration_lab18}
# Names that stand for several stages (`make integration`, `make molecule`, older habits).
GROUPS = {
    "integration": ("integration-lab", "integration-docker", "integration-servers", "integration-servers-late"),
    "molecule": ("molecule-hosts", "molecule-lab"),
}
# The lab's stages are serial: the `lab` tests build it and run it through ~15 site.yml runs, then
# `molecule-lab` converges it again; one lab at a time. These stages share nothing with the lab (their
# own servers on random ports, their own containers, network and InfluxDB, files under .build/), so
# they run beside it in a second process.
BESIDE_THE_LAB = ("integration-servers", "integration-docker", "molecule-hosts")
# ...and these (nothing of the lab either) after the lab's stages, in the lab's process. The split balances
# the two lanes as measured in CI on a clean clone (2 cores): with all three linters/unit stages after the
# lab, its lane took ~1,430 s (integration-lab 1,168 s, ansible-lint 50, sanity 63, unit 29, molecule-lab 75)
# and the other ~1,305 s; ansible-lint moves beside the lab (~1,355 s against ~1,380 s). With Mitogen's strategy
# (ansible.cfg) integration-lab fell to ~745 s and the lane beside it became the longer (~1,155 s against ~880 s):
# ansible-lint and the longest server test file (integration-servers-late) come back here (~1,030 s / ~1,010 s).
AFTER_THE_LAB = ("ansible-lint", "sanity", "unit", "integration-servers-late")
# ...which starts once these are done: molecule-hosts runs containers of the images prepare builds.
BEFORE_THE_SECOND_LANE = ("ruff", "prepare")
SERIAL_ENV = "TEST_SERIAL"


def expand(names: list[str]) -> list[str]:
    wanted = set()
    for name in names:
        wanted.update(GROUPS.get(name, (name,)))
    return [name for name in {**STAGES, **OPT_IN_STAGES} if name in wanted]  # always in the documented order


def run_stages(names: list[str]) -> list[StageResult]:
    results = []
    for name in names:
        print(f"\n===== stage {name} =====", flush=True)
        start = time.monotonic()
        result = {**STAGES, **OPT_IN_STAGES}[name]()
        result.seconds = time.monotonic() - start
        results.append(result)
        print(
            f"===== stage {name}: {result.passed} passed, {result.failed} failed in {result.seconds:.1f}s", flush=True
        )
    return results


def run_in_two_lanes(names: list[str]) -> list[StageResult]:
    """The lab's stages here (then AFTER_THE_LAB's), BESIDE_THE_LAB's in a second `run_all.py --serial` process.

    The second lane's output goes to .build/second-lane.log, printed when it ends, so the lab's
    output stays readable live; its results come back as JSON. An interrupted run stops it too.
    """
    second = [n for n in names if n in BESIDE_THE_LAB]
    first = [n for n in names if n not in BESIDE_THE_LAB]
    before = [n for n in first if n in BEFORE_THE_SECOND_LANE]
    after = [n for n in first if n not in BEFORE_THE_SECOND_LANE and n not in AFTER_THE_LAB]
    after += [n for n in first if n in AFTER_THE_LAB]
    results = run_stages(before)
    log, results_file = BUILD / "second-lane.log", BUILD / "second-lane.json"
    BUILD.mkdir(parents=True, exist_ok=True)
    results_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serial", "--stages", ",".join(second)]
    cmd += ["--results-json", str(results_file)]
    print(f"\n$ {' '.join(cmd)} > {log.relative_to(ROOT)} (beside the lab's stages)", flush=True)
    with log.open("w") as out:
        lane = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            results += run_stages(after)
            if lane.poll() is None:
                print(f"\n(waiting for the second lane: {', '.join(second)})", flush=True)
            lane_rc = lane.wait()
        finally:
            if lane.poll() is None:
                lane.terminate()
                lane.wait()
    print(f"\n----- second lane ({log.relative_to(ROOT)}) -----", flush=True)
    print(log.read_text(), flush=True)
    if results_file.exists():
        results += [StageResult(**item) for item in json.loads(results_file.read_text())]
    else:
        results.append(single("second-lane", lane_rc or 1, "the second lane wrote no results"))
    order = list(STAGES)
    return sorted(results, key=lambda r: order.index(r.name) if r.name in order else len(order))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    choices = [*STAGES, *OPT_IN_STAGES, *GROUPS]
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma separated subset of: {', '.join(choices)}")
    parser.add_argument(
        "--serial",
        action="store_true",
        default=os.environ.get(SERIAL_ENV, "") not in ("", "0"),
        help=f"one stage after the other (also {SERIAL_ENV}=1); default: two lanes when the lab's stages run",
    )
    parser.add_argument("--results-json", type=Path, help=argparse.SUPPRESS)  # the second lane's answer
    args = parser.parse_args()
    asked = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in asked if s not in choices]
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(unknown)}; choose from {', '.join(choices)}")
    wanted = expand(asked)

    lab_stages = [n for n in wanted if n not in (*BESIDE_THE_LAB, *BEFORE_THE_SECOND_LANE, *AFTER_THE_LAB)]
    lanes = not args.serial and lab_stages and any(n in BESIDE_THE_LAB for n in wanted)
    results = run_in_two_lanes(wanted) if lanes else run_stages(wanted)
    if args.results_json:
        args.results_json.write_text(json.dumps([asdict(r) for r in results]))
        return 1 if any(r.failed for r in results) else 0

    failures = [line for r in results for line in r.failures]
    if failures:
        print("\nfailed tests (why, in short; the full report is above):")
        for line in failures:
            print(f"  {line}")
    print("\nstage                passed failed skipped  seconds  note")
    for r in results:
        print(f"{r.name:<20} {r.passed:>6} {r.failed:>6} {r.skipped:>7} {r.seconds:>8.1f}  {r.note}")
    passed = sum(r.passed for r in results)
    failed = sum(r.failed for r in results)
    skipped = sum(r.skipped for r in results)
    print(f"summary: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
