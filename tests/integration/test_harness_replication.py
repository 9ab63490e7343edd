"""Proves the harness: every selected major runs as configured, and logical replication works
between servers of the same and of different majors with plain SQL."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from pg_harness import (
    Database,
    PairDatabases,
    PgHarness,
    PgPair,
    PostgresServer,
    drop_databases,
    selected_majors,
    wait_until,
)
from psycopg import sql

_MAJORS = selected_majors()
# pg_pair covers lowest -> highest; this covers the other direction (a newer publisher).
_LOW, _HIGH = min(_MAJORS), max(_MAJORS)
REVERSE_CROSS = [pytest.param(_HIGH, _LOW, id=f"pub{_HIGH}-sub{_LOW}")] if _HIGH != _LOW else []


def test_server_reports_its_major_and_settings(pg_server: PostgresServer) -> None:
    row = pg_server.execute(
        """
        SELECT current_setting('server_version_num')::int,
               current_setting('wal_level'),
               current_setting('listen_addresses'),
               current_setting('max_replication_slots')::int,
               current_setting('max_wal_senders')::int,
               current_setting('max_logical_replication_workers')::int,
               current_setting('max_worker_processes')::int,
               current_setting('fsync'),
               host(inet_server_addr()),
               inet_server_port()
        """
    )[0]
    version_num, wal_level, listen, slots, senders, workers, processes, fsync, addr, port = row
    assert version_num // 10000 == pg_server.major
    assert version_num == pg_server.version_num == pg_server.server_version_num
    assert wal_level == "logical"
    assert listen == "127.0.0.1"
    assert (slots, senders, workers, processes) == (10, 10, 6, 16)
    assert fsync == "off"
    assert (addr, port) == ("127.0.0.1", pg_server.port)
    superuser, scram = pg_server.execute(
        "SELECT rolsuper, rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user"
    )[0]
    assert superuser is True
    assert scram is True


def test_tcp_requires_the_password(pg_server: PostgresServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_server.conninfo(password="wrong-" + pg_server.password), connect_timeout=5).close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg_server.conninfo(password=None), connect_timeout=5).close()


def test_pg_db_is_fresh_and_has_pgoutput(pg_db: Database) -> None:
    assert pg_db.scalar("SELECT current_database()") == pg_db.name
    assert pg_db.scalar("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") == 0
    slot = f"{pg_db.name}_slot"
    pg_db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [slot])
    assert pg_db.server.execute(
        "SELECT plugin, database, slot_type FROM pg_replication_slots WHERE slot_name = %s", [slot]
    ) == [("pgoutput", pg_db.name, "logical")]
    # left behind on purpose: the fixture's teardown must drop the slot, or dropping the database fails


def test_database_cleanup_removes_subscriptions_and_slots(
    pg_pair: PgPair, pg_database_factory: Callable[..., Database]
) -> None:
    pub = pg_database_factory(pg_pair.publisher, "pub")
    sub = pg_database_factory(pg_pair.subscriber, "sub")
    pub.execute("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t")
    sub.execute("CREATE TABLE t (id int PRIMARY KEY)")
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION p").format(
            sql.Identifier(f"{sub.name}_s"), sql.Literal(pub.conninfo())
        )
    )
    assert pg_pair.publisher.scalar("SELECT count(*) FROM pg_replication_slots WHERE database = %s", [pub.name]) >= 1

    drop_databases([pub, sub])  # publisher first: the harness must cope with either order

    assert not pub.exists()
    assert not sub.exists()
    assert pg_pair.publisher.scalar("SELECT count(*) FROM pg_replication_slots WHERE database = %s", [pub.name]) == 0
    assert pg_pair.subscriber.scalar("SELECT count(*) FROM pg_subscription WHERE subname = %s", [f"{sub.name}_s"]) == 0


def _rows(db: Database) -> list[tuple[object, ...]]:
    return db.execute("SELECT id, name, qty FROM items ORDER BY id")


def _diagnostics(pub: Database, sub: Database) -> str:
    rel_states = sub.execute("SELECT srrelid::regclass::text, srsubstate FROM pg_subscription_rel")
    workers = sub.server.execute("SELECT * FROM pg_stat_subscription")
    return (
        f"\nsubscriber pg_subscription_rel: {rel_states}\nsubscriber pg_stat_subscription: {workers}"
        f"\n--- subscriber log ---\n{sub.server.log_tail(20)}\n--- publisher log ---\n{pub.server.log_tail(20)}"
    )


def assert_replicates(pub: Database, sub: Database) -> None:
    """Initial sync, then INSERT / UPDATE / DELETE must arrive on the subscriber."""
    ddl = "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty integer)"
    pub.execute(ddl)
    sub.execute(ddl)
    pub.execute("INSERT INTO items SELECT g, 'item ' || g, g * 10 FROM generate_series(1, 500) AS g")
    pub.execute("CREATE PUBLICATION items_pub FOR TABLE items")
    subname = f"{sub.name}_s"
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION items_pub").format(
            sql.Identifier(subname), sql.Literal(pub.conninfo())
        )
    )

    def synced() -> bool:
        states = [state for (state,) in sub.execute("SELECT srsubstate FROM pg_subscription_rel")]
        return states == ["r"]

    wait_until(synced, timeout=60, message=lambda: "initial sync (all tables 'r')" + _diagnostics(pub, sub))
    assert sub.scalar("SELECT count(*) FROM items") == 500
    assert _rows(sub) == _rows(pub)
    # the walsender serving the subscription is connected over loopback TCP
    assert (
        pub.server.scalar("SELECT host(client_addr) FROM pg_stat_replication WHERE application_name = %s", [subname])
        == "127.0.0.1"
    )

    with pub.connect() as conn, conn.transaction():
        conn.execute("INSERT INTO items SELECT g, 'new ' || g, g FROM generate_series(501, 510) AS g")
        conn.execute("UPDATE items SET name = 'renamed', qty = -1 WHERE id = 1")
        conn.execute("DELETE FROM items WHERE id IN (2, 3)")
    expected = _rows(pub)
    assert len(expected) == 508

    wait_until(lambda: _rows(sub) == expected, timeout=30, message=lambda: "changes" + _diagnostics(pub, sub))
    assert sub.execute("SELECT name, qty FROM items WHERE id = 1") == [("renamed", -1)]
    assert sub.scalar("SELECT count(*) FROM items WHERE id IN (2, 3)") == 0
    assert sub.execute("SELECT name FROM items WHERE id = 510") == [("new 510",)]


def test_logical_replication(pg_pair: PgPair, pg_pair_db: PairDatabases) -> None:
    assert pg_pair.publisher is not pg_pair.subscriber
    assert (pg_pair_db.publisher.server.major, pg_pair_db.subscriber.server.major) == (
        pg_pair.publisher.major,
        pg_pair.subscriber.major,
    )
    assert_replicates(pg_pair_db.publisher, pg_pair_db.subscriber)


@pytest.mark.parametrize(("pub_major", "sub_major"), REVERSE_CROSS)
def test_logical_replication_newer_publisher(
    pg_harness: PgHarness, pg_database_factory: Callable[..., Database], pub_major: int, sub_major: int
) -> None:
    pair = pg_harness.pair(pub_major, sub_major)
    assert_replicates(pg_database_factory(pair.publisher, "pub"), pg_database_factory(pair.subscriber, "sub"))


@pytest.mark.min_pg(16)
def test_min_pg_marker_skips_older_majors(pg_server: PostgresServer) -> None:
    assert pg_server.major >= 16


def test_private_server_restart_and_alter_system(
    pg_server_factory: Callable[..., PostgresServer], pg_majors: list[int]
) -> None:
    server = pg_server_factory(max(pg_majors), settings={"wal_level": "replica"})
    assert server.scalar("SHOW wal_level") == "replica"
    port, password = server.port, server.password
    server.execute("ALTER SYSTEM SET wal_level = logical")  # must override the harness settings file
    server.restart()
    assert server.running
    assert (server.port, server.password) == (port, password)
    assert server.scalar("SHOW wal_level") == "logical"
    server.stop()
    assert not server.running
    with pytest.raises(psycopg.OperationalError):
        server.connect().close()
