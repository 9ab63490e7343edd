"""roles/docker_engine/files/start-dockerd.sh: which pid files it trusts, which it removes, when it starts dockerd.

Real processes (``sleep``) stand behind the pid files and a small shell script plays dockerd (it notes its
arguments and exits), so nothing here touches this machine's Docker engine.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "docker_engine" / "files" / "start-dockerd.sh"


@pytest.fixture
def sleeper() -> Iterator[int]:
    """The pid of a live process whose name is ``sleep`` (what a wrapped pid looks like)."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    fake = tmp_path / "dockerd"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "started"}\n')
    fake.chmod(0o755)
    return {
        "dir": tmp_path,
        "fake": fake,
        "pid_file": tmp_path / "docker.pid",
        "containerd_pid_file": tmp_path / "containerd" / "containerd.pid",
        "log": tmp_path / "log" / "dockerd.log",
    }


def start(setup: dict, **names: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DOCKER_PID_FILE": str(setup["pid_file"]),
        "CONTAINERD_PID_FILE": str(setup["containerd_pid_file"]),
        **names,
    }
    argv = ["/bin/sh", str(SCRIPT), str(setup["log"]), str(setup["fake"]), "--host=unix:///x.sock"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=True)


def started(setup: dict, wait: float = 10.0) -> str | None:
    marker = setup["dir"] / "started"
    deadline = time.monotonic() + wait  # setsid -f returns before the detached program has run
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text():
            return marker.read_text().strip()
        time.sleep(0.05)
    return None


def test_pid_files_naming_other_programs_are_removed_and_dockerd_starts(setup: dict, sleeper: int) -> None:
    setup["pid_file"].write_text(f"{sleeper}\n")
    setup["containerd_pid_file"].parent.mkdir()
    setup["containerd_pid_file"].write_text(f"{sleeper}\n")
    run = start(setup)
    assert "already running" not in run.stdout
    assert not setup["pid_file"].exists()
    assert not setup["containerd_pid_file"].exists()
    assert started(setup) == "--host=unix:///x.sock"
    assert "starting dockerd (inventium.logical_replication.docker_engine)" in setup["log"].read_text()


def test_pid_files_of_gone_processes_are_removed(setup: dict) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    setup["pid_file"].write_text(f"{gone.pid}\n")
    start(setup)
    assert not setup["pid_file"].exists()
    assert started(setup) == "--host=unix:///x.sock"


def test_a_running_dockerd_is_left_alone(setup: dict, sleeper: int) -> None:
    setup["pid_file"].write_text(f"{sleeper}\n")
    run = start(setup, DOCKERD_NAME="sleep")
    assert run.stdout.strip() == f"dockerd already running (pid {sleeper})"
    assert setup["pid_file"].read_text().strip() == str(sleeper)
    assert not setup["log"].exists()  # it said so and exited before starting anything
    assert started(setup, wait=1.0) is None


def test_a_live_containerd_is_kept_for_dockerd_to_reuse(setup: dict, sleeper: int) -> None:
    setup["containerd_pid_file"].parent.mkdir()
    setup["containerd_pid_file"].write_text(f"{sleeper}\n")
    start(setup, CONTAINERD_NAME="sleep")
    assert setup["containerd_pid_file"].read_text().strip() == str(sleeper)
    assert started(setup) == "--host=unix:///x.sock"
