"""Client helpers for the localhost lab (README, "The lab"), shared by every test that talks to it.

Used by ``tests/integration/test_lab.py``, the Testinfra tests of ``molecule/lab`` and other
lab-level tests: ``import lab_client`` (``tests/`` is on ``sys.path``: ``tests/conftest.py``, or
``molecule/lab/tests/conftest.py``). Playbooks run through ``support.ansible`` (``tests/support``).

Everything here reads the lab's own state files (``.lab/endpoints.json``, ``.lab/secrets``);
nothing is hard-coded that the lab already records. No pytest import: plain functions that
raise ``AssertionError`` (or psycopg errors) on failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.ansible import LAB_DROP, ansible_env, run_playbook

REPO_ROOT = Path(__file__).resolve().parent.parent
LAB_DIR = REPO_ROOT / ".lab"
SECRETS_DIR = LAB_DIR / "secrets"
ENDPOINTS_FILE = LAB_DIR / "endpoints.json"
SITE_PLAYBOOK = "site.yml"
LAB_INVENTORY = "inventory/lab"
PLAYBOOK_TIMEOUT = 1200
REPLICATION_TIMEOUT = 15.0
# One lab per machine: tests that reconfigure it hold this lock exclusively, tests that only use it
# as built hold it shared (`flock -s/-x /tmp/inventium-lab.lock <command>` from a shell).
LAB_LOCK = "/tmp/inventium-lab.lock"

# One line of the PLAY RECAP, e.g. ``publisher : ok=12 changed=0 unreachable=0 failed=0 ...``.
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def lab_unavailable() -> str | None:
    """Why the lab cannot be built or reached on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "the lab needs root"
    if shutil.which("docker") is None or shutil.which("pg_lsclusters") is None:
        return "the lab needs the docker CLI and postgresql-common"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "no Docker engine answers (run playbooks/images.yml first)"
    return None


def endpoints() -> dict[str, Any]:
    """The lab's ``.lab/endpoints.json`` (written by the lab_state role)."""
    return json.loads(ENDPOINTS_FILE.read_text())


def pg_nodes() -> dict[str, dict[str, Any]]:
    """``{node: {kind, host, port, dbname, user, service, password_file}}`` of the lab."""
    return endpoints()["postgresql"]


def secret(name: str) -> str:
    """A generated lab secret from ``.lab/secrets/<name>`` (never print it)."""
    return (SECRETS_DIR / name).read_text().strip()


def all_secrets() -> list[str]:
    """Every generated secret of the lab (for asserting that none leaks into output)."""
    return [path.read_text().strip() for path in sorted(SECRETS_DIR.iterdir()) if path.is_file()]


def connect(node: str, autocommit: bool = True) -> Any:
    """A psycopg 3 connection as ``postgres`` to the node's lab database."""
    import psycopg  # here, so that importing this module never needs psycopg

    info = pg_nodes()[node]
    return psycopg.connect(
        host=info["host"],
        port=int(info["port"]),
        dbname=info["dbname"],
        user=info["user"],
        password=Path(info["password_file"]).read_text().strip(),
        autocommit=autocommit,
        connect_timeout=10,
        # the subscriber containers serve TLS only: verified against the lab CA as endpoints.json says
        **{key: info[key] for key in ("sslmode", "sslrootcert") if info.get(key)},
    )


def books(node: str, where: str = "true") -> set[tuple[int, int, str]]:
    """``(id, sku, title)`` of the demo table's rows on ``node`` matching the SQL ``where``."""
    with connect(node) as conn:
        return {tuple(row) for row in conn.execute(f"SELECT id, sku, title FROM public.books WHERE {where}")}  # noqa: S608


def postmaster_start(node: str) -> str:
    """The node's ``pg_postmaster_start_time()``; unchanged means the server was not restarted."""
    with connect(node) as conn:
        return str(conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0])


def wait_for(check: Callable[[], bool], timeout: float = REPLICATION_TIMEOUT) -> float:
    """Poll ``check`` until it holds; return the seconds it took (AssertionError after ``timeout``)."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not replicated within {timeout} s")
        time.sleep(0.1)


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """``{host: {ok, changed, unreachable, failed}}`` from ansible-playbook's PLAY RECAP."""
    return {
        host: {"ok": int(ok), "changed": int(changed), "unreachable": int(unr), "failed": int(failed)}
        for host, ok, changed, unr, failed in RECAP.findall(output)
    }


def changed_tasks(output: str) -> list[str]:
    """``TASK [...] changed: [host]`` lines of a playbook run (to explain a non-zero changed)."""
    tasks, current = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            current = line
        elif line.startswith("changed:"):
            tasks.append(f"{current} {line}")
    return tasks


@dataclass
class PlaybookRun:
    rc: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        return parse_recap(self.output)

    def changed_tasks(self) -> list[str]:
        return changed_tasks(self.output)


# The last successful plain ``site.yml -i inventory/lab`` run of this pytest process (no extra
# arguments): a test that needs "the lab was converged, now re-run it" can start from it instead
# of paying for one more converge (test_lab.py).
_LAST_PLAIN_SITE_RUN: list[PlaybookRun] = []


def run_site(*extra: str, playbook: str = SITE_PLAYBOOK, inventory: str = LAB_INVENTORY) -> PlaybookRun:
    """Run ``ansible-playbook site.yml -i inventory/lab`` from the repository root (output captured)."""
    env = ansible_env(callback=None, drop=LAB_DROP)  # ansible.cfg's text callback: the recap is parsed
    run = run_playbook(playbook, *extra, inventory=inventory, callback=None, env=env, timeout=PLAYBOOK_TIMEOUT)
    result = PlaybookRun(run.rc, run.output, run.seconds)
    plain = not extra and playbook == SITE_PLAYBOOK and inventory == LAB_INVENTORY
    if plain and result.rc == 0:
        _LAST_PLAIN_SITE_RUN[:] = [result]
    else:
        _LAST_PLAIN_SITE_RUN.clear()  # the lab may now differ from what that run left
    return result


def last_plain_site_run() -> PlaybookRun | None:
    """This process's last successful plain site.yml run, if no other playbook ran through here since."""
    return _LAST_PLAIN_SITE_RUN[0] if _LAST_PLAIN_SITE_RUN else None


@contextlib.contextmanager
def lab_lock(exclusive: bool, wait: float = 1800.0) -> Iterator[None]:
    """Hold :data:`LAB_LOCK` exclusively (the caller reconfigures the lab) or shared (it only uses it).

    Waits at most ``wait`` seconds for whoever holds it the other way, then fails the test saying so.
    """
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with open(LAB_LOCK, "a") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    how = "exclusive" if exclusive else "shared"
                    raise AssertionError(f"no {how} hold on the lab lock {LAB_LOCK} within {wait:.0f} s") from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
