"""pytest fixtures: throwaway PostgreSQL servers for the integration tests.

See ``README.md`` in this directory. The servers are session-scoped and shared; every test gets
fresh databases (``pg_db``, ``pg_pair_db``, ``pg_database_factory``) that are dropped afterwards,
together with their subscriptions and replication slots.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pg_harness import (  # tests/integration is on sys.path: tests/conftest.py
    Database,
    HarnessError,
    PairDatabases,
    PgHarness,
    PgPair,
    PostgresServer,
    drop_databases,
    install_sigterm_handler,
    pair_combos,
    selected_majors,
)

try:
    SELECTED_MAJORS = selected_majors()
    _SELECTION_ERROR = None
except HarnessError as exc:  # reported by pytest_configure as a usage error
    SELECTED_MAJORS, _SELECTION_ERROR = [], str(exc)
PAIR_COMBOS = pair_combos(SELECTED_MAJORS)


def _pair_id(combo: tuple[int, int]) -> str:
    return f"pub{combo[0]}-sub{combo[1]}"


def pytest_configure(config: pytest.Config) -> None:
    if _SELECTION_ERROR:
        raise pytest.UsageError(_SELECTION_ERROR)
    config.addinivalue_line(
        "markers",
        "min_pg(major): skip the pg_server / pg_pair parametrizations whose PostgreSQL major is below `major`",
    )
    config.addinivalue_line(
        "markers",
        "docker: uses the Docker engine (containers of its own); tests/run_all.py runs these beside the lab's "
        "tests, apart from the ones that need only throwaway servers",
    )
    config.addinivalue_line(
        "markers",
        "lab: uses the lab (make lab; one at a time, under its lock); tests/run_all.py runs these in the stage "
        "integration-lab, the critical path of a full run; mark them docker too",
    )


# Tests that disturb the lab the way an outage does: they kill and restart containers, so the next
# site.yml run has real work (the sampler's configuration names each container's host network link,
# which a restart replaces). They run after every test that expects a site.yml run to change nothing.
LAB_DISTURBING = ("test_faults.py",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the lab-disturbing tests last; apply ``@pytest.mark.min_pg(N)`` at collection time, so no
    server is started for skipped tests."""
    items.sort(key=lambda item: item.path.name in LAB_DISTURBING)  # stable: the rest keep their order
    for item in items:
        marker = item.get_closest_marker("min_pg")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None:
            continue
        minimum = int(marker.args[0])
        majors: list[int] = []
        if "pg_server" in callspec.params:
            majors.append(callspec.params["pg_server"])
        if "pg_pair" in callspec.params:
            majors.extend(callspec.params["pg_pair"])
        if majors and min(majors) < minimum:
            item.add_marker(pytest.mark.skip(reason=f"needs PostgreSQL >= {minimum} (have {min(majors)})"))


def _unique_name(request: pytest.FixtureRequest, prefix: str) -> str:
    """A short, unique, lower-case database name derived from the test name."""
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:30]
    return f"{prefix}_{stem}_{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def pg_majors() -> list[int]:
    """The selected PostgreSQL majors (``PG_VERSIONS``, default ``15,17,18``), ascending."""
    return list(SELECTED_MAJORS)


def _shared_servers_needed(items: list[pytest.Item]) -> list[tuple[int, int]]:
    """``(major, slot)`` of the shared servers the collected tests use, in order of first use."""
    keys: dict[tuple[int, int], None] = {}
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.get_closest_marker("skip"):
            continue
        if "pg_server" in params:
            keys[(params["pg_server"], 0)] = None
        if "pg_pair" in params:
            keys.update(dict.fromkeys(PgHarness.pair_keys(*params["pg_pair"])))
    return list(keys)


@pytest.fixture(scope="session")
def pg_harness(request: pytest.FixtureRequest, pg_majors: list[int]) -> Iterator[PgHarness]:
    """The session's :class:`pg_harness.PgHarness` (binaries, shared servers, cleanup).

    On creation it starts, in the background, every shared server the collected tests will use.
    """
    install_sigterm_handler()
    harness = PgHarness(pg_majors)
    try:
        harness.prepare(_shared_servers_needed(request.session.items))
        yield harness
    finally:
        harness.close()


@pytest.fixture(scope="session", params=SELECTED_MAJORS, ids=lambda major: f"pg{major}")
def pg_server(request: pytest.FixtureRequest, pg_harness: PgHarness) -> PostgresServer:
    """A running server of each selected major (shared by the session; ids ``pg15``, ``pg17`` ...).

    Do not change server-wide state on it (ALTER SYSTEM, restarts, roles left behind): use
    ``pg_server_factory`` for that. Use ``pg_db`` for a fresh database on it.
    """
    return pg_harness.shared_server(request.param)


@pytest.fixture(scope="session", params=PAIR_COMBOS, ids=_pair_id)
def pg_pair(request: pytest.FixtureRequest, pg_harness: PgHarness) -> PgPair:
    """``.publisher`` / ``.subscriber`` servers: a same-major pair per selected major plus lowest ->
    highest (ids ``pub15-sub15`` ... ``pub15-sub18``). Shared by the session; use ``pg_pair_db``.
    """
    pub_major, sub_major = request.param
    return pg_harness.pair(pub_major, sub_major)


@pytest.fixture
def pg_server_factory(pg_harness: PgHarness) -> Iterator[Callable[..., PostgresServer]]:
    """``pg_server_factory(major, *, name=None, settings=None, start=True) -> PostgresServer``.

    A private server for this test (free to restart or reconfigure); destroyed after the test.
    ``settings`` override the harness defaults in ``harness.conf``, e.g. ``{"wal_level": "replica"}``.
    """
    servers: list[PostgresServer] = []

    def factory(major: int, **kwargs: Any) -> PostgresServer:
        server = pg_harness.new_server(major, **kwargs)
        servers.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(servers):
            server.destroy()


@pytest.fixture
def pg_database_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Database]]:
    """``pg_database_factory(server, prefix="t") -> Database``: fresh databases on any server.

    After the test all of them are dropped together: subscriptions first (disabled, detached with
    ``slot_name = NONE``), then the databases' logical slots, then the databases (``WITH (FORCE)``).
    """
    created: list[Database] = []

    def factory(server: PostgresServer, prefix: str = "t") -> Database:
        database = server.create_database(_unique_name(request, prefix))
        created.append(database)
        return database

    try:
        yield factory
    finally:
        drop_databases(created)


@pytest.fixture
def pg_db(pg_server: PostgresServer, pg_database_factory: Callable[..., Database]) -> Database:
    """A fresh database on ``pg_server`` (dropped after the test)."""
    return pg_database_factory(pg_server, "t")


@pytest.fixture
def pg_pair_db(pg_pair: PgPair, pg_database_factory: Callable[..., Database]) -> PairDatabases:
    """Fresh databases ``.publisher`` / ``.subscriber`` on ``pg_pair`` (dropped after the test)."""
    return PairDatabases(pg_database_factory(pg_pair.publisher, "pub"), pg_database_factory(pg_pair.subscriber, "sub"))
