"""``make status`` on the real lab while subscriber2's container is stopped (issue R1, item 1).

Before the fix, ``make status`` died on an unreachable subscriber (``object of type 'dict' has no
attribute 'subscriptions'``) and printed nothing about the other nodes. Now, with subscriber2
stopped (``docker stop``):

- ``make status`` exits 2 and ``scripts/status.sh`` exits 2 (critical);
- subscriber2 is one ``UNREACHABLE`` line naming its port, plus its ``node_unreachable`` finding;
- everything else is still shown: the publisher with subscriber2's slot ``INACTIVE``,
  subscriber1 with its subscription;
- no secret of the lab appears in the output.

Then the container is started again and the test waits until the status is back where it was
before the stop (healthy when the lab was healthy: exit 0), subscriber2's slot active again. The
whole test holds the lab lock exclusively (it stops a lab container); a fixture restarts the
container whatever happens.
"""

from __future__ import annotations

import re
import subprocess
import time

import lab_client
import pytest
from lab_client import REPO_ROOT, all_secrets, lab_lock, lab_unavailable, pg_nodes
from support.ansible import LAB_DROP, ansible_env

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab,
    pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable())),
]

STOPPED = "subscriber2"
SLOT = f"{STOPPED}_sub"
LOCK_WAIT = 1800.0
RECOVERY_TIMEOUT = 180.0
TIMEOUT = 600


def run(command):
    """Exit code and output (whitespace runs made one space: the YAML result format folds long lines)."""
    proc = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=ansible_env(None, drop=LAB_DROP),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return proc.returncode, " ".join((proc.stdout + "\n" + proc.stderr).split())


def status():
    """``scripts/status.sh`` on the lab: 0 healthy, 1 warnings, 2 critical."""
    return run([str(REPO_ROOT / "scripts" / "status.sh"), "-i", lab_client.LAB_INVENTORY])


def container_state(name):
    result = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


def wait_healthy(name, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if container_state(name) in ("true healthy", "true"):
            return
        time.sleep(1)
    raise AssertionError(f"container {name} is not healthy after {timeout}s: {container_state(name)!r}")


@pytest.fixture
def restart_afterwards():
    """Whatever happens, leave the stopped container running and healthy."""
    yield
    if not container_state(STOPPED).startswith("true"):
        subprocess.run(["docker", "start", STOPPED], capture_output=True, check=False)
        wait_healthy(STOPPED)


def test_status_with_a_stopped_subscriber(restart_afterwards):
    secrets = all_secrets()
    port = pg_nodes()[STOPPED]["port"]
    with lab_lock(exclusive=True, wait=LOCK_WAIT):
        before, output = status()
        assert before in (0, 1), f"the lab is not healthy before the test (exit {before}):\n{output}"
        assert "UNREACHABLE" not in output
        assert f"slot {SLOT} active" in output, output

        subprocess.run(["docker", "stop", "-t", "10", STOPPED], check=True, capture_output=True)
        try:
            rc, output = run(["make", "status"])
            assert rc == 2, output
            assert f"{STOPPED} UNREACHABLE: Unable to connect to PostgreSQL at host 127.0.0.1 port {port}" in output, (
                output
            )
            assert "check error node_unreachable: the server could not be read" in output, output
            # since when: the lab's sampler read it moments before the stop
            ago = re.search(r"last read by the sampler \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \((\d+) s ago\)", output)
            assert ago, output
            assert int(ago.group(1)) < 300, output
            assert f"slot {SLOT} INACTIVE" in output, output
            assert "publisher PostgreSQL" in output, output
            assert "subscriber1 PostgreSQL" in output, output
            assert "sub subscriber1_sub enabled" in output, output
            assert "status: critical (exit 2)" in output, output
            assert "has no attribute" not in output
            for secret in secrets:
                assert secret not in output

            rc, output = status()
            assert rc == 2, output
            assert f"{STOPPED} UNREACHABLE:" in output
        finally:
            subprocess.run(["docker", "start", STOPPED], check=True, capture_output=True)
            wait_healthy(STOPPED)

        # Back where it was before the stop: subscriber2 read again, its slot active.
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while True:
            rc, output = status()
            if rc <= before and "UNREACHABLE" not in output and f"slot {SLOT} active" in output:
                break
            assert time.monotonic() < deadline, (
                f"status did not recover within {RECOVERY_TIMEOUT:.0f} s (exit {rc}, {before} before the stop):"
                f"\n{output}"
            )
            time.sleep(5)
        if before == 0:
            assert "status: healthy (exit 0)" in output, output
