"""Building and re-running the localhost lab with ``ansible-playbook site.yml`` (README "The lab", issue L1).

Builds (or reconfigures) the real lab from the repository root with the lab inventory: the
publisher is the host's postgresql-common cluster 15/main on 127.0.0.1:5432, the subscribers are
the containers ``subscriber1`` (PostgreSQL 15, 127.0.0.1:5433) and ``subscriber2`` (PostgreSQL 17,
127.0.0.1:5434) on the Docker network ``inventium-lab``. Then checks what only two timed runs show:

- the time of the first build and of the no-op re-run (printed);
- the second run reports ``changed=0`` and restarts no server (unchanged postmaster start times).

What the built lab serves (row filters, INSERT/UPDATE/DELETE reaching the right subscriber, TLS,
loopback-only ports, private ``.lab`` files, the libpq service file, no secret in the playbook
output) is verified once, by Molecule scenario ``lab`` (molecule/lab/tests), which runs after this
stage on the lab built here. The lab is left running (it is what ``make lab`` builds).
Needs root, a Docker engine and the lab images (``playbooks/images.yml``, stage ``prepare``).
"""

from __future__ import annotations

import pytest

pytest.importorskip("psycopg", reason="psycopg 3 is not installed")

from lab_client import (
    lab_unavailable,
    last_plain_site_run,
    postmaster_start,
    run_site,
)

NODES = ("publisher", "subscriber1", "subscriber2")

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab,
    pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable())),
]


@pytest.fixture(scope="module")
def lab() -> dict[str, object]:
    # A plain site.yml run earlier in this session (e.g. the metrics tests' build) is the first run:
    # what matters here is that converging again changes and restarts nothing.
    first = last_plain_site_run() or run_site()
    assert first.rc == 0, first.output[-3000:]
    starts = {node: postmaster_start(node) for node in NODES}
    second = run_site()
    assert second.rc == 0, second.output[-3000:]
    return {"first": first, "second": second, "starts_before_second": starts}


def test_build_and_rerun_timings(lab: dict[str, object]) -> None:
    first, second = lab["first"], lab["second"]
    print(
        f"\nfirst site.yml run (maybe an earlier test's): {first.seconds:.1f} s, second (no-op): {second.seconds:.1f} s"
    )
    assert set(first.recap()) >= {"localhost", "publisher", "subscriber1", "subscriber2"}


def test_second_run_changes_and_restarts_nothing(lab: dict[str, object]) -> None:
    second = lab["second"]
    recap = second.recap()
    assert recap, second.output[-3000:]
    assert all(stats["changed"] == 0 for stats in recap.values()), "\n".join(second.changed_tasks())
    assert all(stats["failed"] == 0 and stats["unreachable"] == 0 for stats in recap.values())
    assert {node: postmaster_start(node) for node in NODES} == lab["starts_before_second"]
