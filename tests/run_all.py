"""The single test entry point behind `make test`.

Runs the stages in order, prints each stage's time, and ends with one line
``summary: N passed, N failed, N skipped``. pytest stages contribute their
test counts; every other stage (a linter, a Molecule scenario) counts as one
test. A failing stage does not stop the later ones, so one run shows every
problem; the exit status is non-zero when anything failed.

Usage: tests/run_all.py [--stages ruff,ansible-lint,...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
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


def pytest_command(report: Path, path: str, extra: list[str] | None = None) -> list[str]:
    return [str(VENV_BIN / "python"), "-m", "pytest", path, "-ra", f"--junitxml={report}", *(extra or [])]


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


def pytest_stage(name: str, path: str, extra: list[str] | None = None) -> StageResult:
    report = junit_path(name)
    rc = run(pytest_command(report, path, extra), env=ansible_env(**TOOLS))
    return pytest_result(name, rc, report)


def merge_results(name: str, parts: list[StageResult]) -> StageResult:
    merged = StageResult(name, note="; ".join(f"{p.name}: {p.note} in {p.seconds:.0f}s" for p in parts))
    for part in parts:
        merged.passed += part.passed
        merged.failed += part.failed
        merged.skipped += part.skipped
        merged.failures += part.failures
    return merged


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


def stage_integration() -> StageResult:
    """The Docker/lab tests and the throwaway-server tests, as two pytest processes side by side.

    The lab tests spend most of their time waiting on ansible-playbook, containers and replication,
    the others on their own PostgreSQL servers (random ports, nothing shared with the lab), so
    running them together shortens the stage by about the length of the shorter group. The
    throwaway-server group writes its output to a log that is printed once it ends, so the lab
    group's output stays readable live. INTEGRATION_SERIAL=1 runs the groups one after the other.
    """
    groups = {"integration-docker": ["-m", "docker"], "integration-servers": ["-m", "not docker"]}
    env = ansible_env(**TOOLS)
    if os.environ.get("INTEGRATION_SERIAL", "") not in ("", "0"):
        parts = []
        for name, marks in groups.items():
            start = time.monotonic()
            parts.append(pytest_stage(name, "tests/integration", marks))
            parts[-1].seconds = time.monotonic() - start
        return merge_results("integration", parts)

    servers_report, docker_report = junit_path("integration-servers"), junit_path("integration-docker")
    servers_log = BUILD / "integration-servers.log"
    servers_cmd = pytest_command(servers_report, "tests/integration", groups["integration-servers"])
    print(f"$ {' '.join(servers_cmd)} > {servers_log.relative_to(ROOT)} (in the background)", flush=True)
    start = time.monotonic()
    with servers_log.open("w") as log:
        servers = subprocess.Popen(servers_cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            docker_rc = run(pytest_command(docker_report, "tests/integration", groups["integration-docker"]), env=env)
            docker_seconds = time.monotonic() - start
            if servers.poll() is None:
                print("\n(waiting for the throwaway-server tests to finish)", flush=True)
            servers_rc = servers.wait()
        finally:
            if servers.poll() is None:  # interrupted: do not leave the other group running
                servers.terminate()
                servers.wait()
    print(f"\n----- throwaway-server tests ({servers_log.relative_to(ROOT)}) -----", flush=True)
    print(servers_log.read_text(), flush=True)
    docker = pytest_result("docker", docker_rc, docker_report)
    docker.seconds = docker_seconds
    servers_result = pytest_result("servers", servers_rc, servers_report)
    servers_result.seconds = junit_seconds(servers_report)  # it may have ended long before the wait
    return merge_results("integration", [docker, servers_result])


def junit_counts(report: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) of a pytest junit report."""
    total = failed = skipped = 0
    # The report is the file pytest just wrote for us, not untrusted input.
    for suite in ET.parse(report).getroot().iter("testsuite"):  # noqa: S314
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return total - failed - skipped, failed, skipped


def junit_seconds(report: Path) -> float:
    """The duration pytest wrote into its junit report (0 when there is none)."""
    if not report.exists():
        return 0.0
    # The report is the file pytest just wrote for us, not untrusted input.
    suites = ET.parse(report).getroot().iter("testsuite")  # noqa: S314
    return sum(float(suite.get("time", 0)) for suite in suites)


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


def stage_molecule() -> StageResult:
    """Every Molecule scenario with `molecule test` (after the integration stage built the lab).

    Each scenario counts as one test for its own steps (create, converge, idempotence, ...) plus
    the counts of its Testinfra tests, read from the junit report the verifier's pytest writes
    (PYTEST_ADDOPTS reaches it through Molecule's environment).
    """
    scenarios = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
    result = StageResult("molecule", note=", ".join(scenarios) or "no scenarios")
    for scenario in scenarios:
        report = BUILD / f"junit-molecule-{scenario}.xml"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.unlink(missing_ok=True)
        env = ansible_env(**TOOLS)
        env["PYTEST_ADDOPTS"] = f"{env.get('PYTEST_ADDOPTS', '')} --junitxml={report}".strip()
        start = time.monotonic()
        rc = run([str(VENV_BIN / "molecule"), "test", "-s", scenario], env=env)
        seconds = time.monotonic() - start
        passed, failed, skipped = 0, 0, 0
        if report.exists():
            passed, failed, skipped = junit_counts(report)
            result.failures += junit_failures(report)
        result.passed += passed + int(rc == 0)
        result.failed += failed + int(rc != 0 and failed == 0)
        result.skipped += skipped
        print(f"molecule {scenario}: exit {rc} in {seconds:.1f}s; testinfra: {passed} passed, {failed} failed")
    return result


STAGES = {
    "ruff": stage_ruff,
    "ansible-lint": stage_ansible_lint,
    "sanity": stage_sanity,
    "unit": stage_unit,
    "prepare": stage_prepare,
    "integration": stage_integration,
    "molecule": stage_molecule,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma separated subset of: {', '.join(STAGES)}")
    args = parser.parse_args()
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(unknown)}; choose from {', '.join(STAGES)}")

    results: list[StageResult] = []
    for name in STAGES:  # always in the documented order, whatever order was asked
        if name not in wanted:
            continue
        print(f"\n===== stage {name} =====", flush=True)
        start = time.monotonic()
        result = STAGES[name]()
        result.seconds = time.monotonic() - start
        results.append(result)
        print(
            f"===== stage {name}: {result.passed} passed, {result.failed} failed in {result.seconds:.1f}s", flush=True
        )

    failures = [line for r in results for line in r.failures]
    if failures:
        print("\nfailed tests (why, in short; the full report is above):")
        for line in failures:
            print(f"  {line}")
    print("\nstage          passed failed skipped  seconds  note")
    for r in results:
        print(f"{r.name:<14} {r.passed:>6} {r.failed:>6} {r.skipped:>7} {r.seconds:>8.1f}  {r.note}")
    passed = sum(r.passed for r in results)
    failed = sum(r.failed for r in results)
    skipped = sum(r.skipped for r in results)
    print(f"summary: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
