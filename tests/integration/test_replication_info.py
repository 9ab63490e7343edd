"""inventium.logical_replication.replication_info against real PostgreSQL servers, run through Ansible.

A publisher with a publication (row filter, column list) and a subscriber subscribed to it, set up
with plain SQL on every pair (same major and cross-version), are read with the module on both
sides and the facts compared with reality. Then every finding of the checks is provoked on the
pair (published table without replica identity, row filter outside the replica identity, owned
sequences, inactive slot retaining WAL, disabled subscription, apply errors from a conflict,
tables not ready) and on a private server (pending wal_level change, low limits, lost slot).
With ``fail_on_connection_error: false`` a server that cannot be read (stopped, wrong port, wrong
password, or the connection terminated while the facts are read) is a ``node_unreachable`` finding
instead of a failure, without the password anywhere in the output (also through ``ansible-playbook -vvv``).
"""

from __future__ import annotations

import contextlib
import secrets
import threading

import psycopg
import pytest
from pg_harness import free_port, wait_until
from psycopg import sql
from support.ansible import ModuleCall, run_module, run_modules

from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import APPLICATION_NAME

MODULE = "replication_info"
SUBSET_KEYS = ("server", "publications", "slots", "senders", "subscriptions", "subscription_counts", "checks")
BOOKS = [
    (1, 31, "Practical Object Oriented Design in Ruby", "technical"),
    (2, 22, "Great By Choice", "leadership"),
    (3, 73, "Building Evolutionary Architectures", "technical"),
    (4, 47, "Design Patterns in Ruby", "technical"),
    (5, 58, "Scaling Teams", "leadership"),
]


def unique(prefix):
    return f"{prefix}_{secrets.token_hex(4)}"


def info(db, check=False, **kwargs):
    return run_module(MODULE, {**db.login_args(), **kwargs}, check=check)


def codes(result):
    return sorted({c["code"] for c in result["checks"]})


def by_name(items, name):
    found = [item for item in items if item.get("name") == name]
    assert found, f"{name} not in {[item.get('name') for item in items]}"
    return found[0]


def create_books(db):
    db.execute("CREATE TABLE books (id bigint PRIMARY KEY, sku int, title text, topic text, note text)")


def subscribe(sub, name, pub_db, publication, **options):
    statement = sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}").format(
        sql.Identifier(name), sql.Literal(pub_db.conninfo()), sql.Identifier(publication)
    )
    if options:
        statement += sql.SQL(" WITH ({})").format(
            sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.SQL(k), sql.Literal(v)) for k, v in options.items())
        )
    sub.execute(statement)


def wait_ready(sub, name):
    wait_until(
        lambda: sub.scalar(
            "SELECT count(*) > 0 AND bool_and(r.srsubstate = 'r') FROM pg_subscription_rel r"
            " JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = %s",
            [name],
        ),
        timeout=60,
        message=f"tables of {name} ready",
    )


@pytest.fixture
def replicated(pg_pair_db):
    """Publisher and subscriber databases replicating ``books`` through a row-filtered, column-listed publication."""
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    publication, subscription = unique("lead_pub"), unique("lead_sub")
    create_books(pub)
    with pub.connect() as conn:
        conn.cursor().executemany("INSERT INTO books (id, sku, title, topic) VALUES (%s, %s, %s, %s)", BOOKS)
    # publish = insert: the row filter (topic) is not in the replica identity, so UPDATE/DELETE
    # could not be published (a finding provoked later). Before 15: no row filter, no column list.
    table = "books (id, sku, title, topic) WHERE (topic = 'leadership')" if pub.server.major >= 15 else "books"
    pub.execute(
        sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert')").format(
            sql.Identifier(publication), sql.SQL(table)
        )
    )
    create_books(sub)
    subscribe(sub, subscription, pub, publication, **({"disable_on_error": True} if sub.server.major >= 15 else {}))
    wait_ready(sub, subscription)
    wait_until(
        lambda: pub.server.scalar(
            "SELECT count(*) FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid"
            " WHERE s.slot_name = %s AND r.state = 'streaming'",
            [subscription],
        ),
        timeout=30,
        message=f"{subscription} streaming",
    )
    # The table sync slots are gone once every table is ready; wait for their walsenders too.
    wait_until(
        lambda: (
            not pub.server.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pg\\_%\\_sync\\_%'")
        ),
        timeout=30,
        message="table sync slots dropped",
    )
    return pub, sub, publication, subscription


def test_facts_and_checks_on_a_pair(replicated):
    pub, sub, publication, subscription = replicated
    secret = pub.server.password  # in the subscription's connection string

    # ---- publisher: real values, healthy --------------------------------------------------------
    result = info(pub)
    assert result["changed"] is False
    assert result["queries"] == []
    assert result["database"] == pub.name
    server = result["server"]
    assert server["major"] == pub.server.major
    assert server["version_num"] == pub.server.server_version_num
    assert server["wal_level"] == "logical"
    assert server["wal_level_pending"] is None
    assert server["in_recovery"] is False
    assert server["max_replication_slots"] == 10
    assert server["replication_slots_used"] >= 1
    assert server["wal_senders_used"] >= 1
    assert pub.server.scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [server["current_lsn"]]) >= 0
    assert server["current_lsn_bytes"] == pub.server.scalar(
        "SELECT pg_wal_lsn_diff(%s::pg_lsn, '0/0')::bigint", [server["current_lsn"]]
    )
    # A primary has no received WAL and no replayed commit (a standby's: test_failover_slots).
    assert server["receive_lsn"] is None
    assert server["seconds_since_last_replayed_commit"] is None

    pub_state = by_name(result["publications"], publication)
    assert pub_state["publish"] == ["insert"]
    assert pub_state["all_tables"] is False
    assert pub_state["published_table_count"] == 1
    [books] = pub_state["tables"]
    assert books["name"] == "public.books"
    if pub.server.major >= 15:
        assert books["columns"] == ["id", "sku", "title", "topic"]
        assert "leadership" in books["where"]
    else:
        assert books["columns"] is None
        assert books["where"] is None

    slot = by_name(result["slots"], subscription)
    assert slot["active"] is True
    assert slot["active_pid"]
    assert slot["slot_type"] == "logical"
    assert slot["plugin"] == "pgoutput"
    assert slot["database"] == pub.name
    assert slot["wal_status"] == "reserved"
    assert slot["retained_wal_bytes"] >= 0
    assert slot["confirmed_flush_lag_bytes"] >= 0
    if pub.server.major >= 17:
        assert slot["inactive_since"] is None
        assert slot["invalidation_reason"] is None
        assert slot["failover"] is False

    [sender] = [s for s in result["senders"] if s["application_name"] == subscription]
    assert sender["pid"] == slot["active_pid"]
    assert sender["slot_name"] == subscription
    assert sender["state"] == "streaming"
    assert sender["sync_state"] == "async"
    assert sender["client_addr"] == "127.0.0.1"
    for kind in ("sent", "write", "flush", "replay"):
        assert sender[f"{kind}_lag_bytes"] >= 0
    for kind in ("write", "flush", "replay"):
        value = sender[f"{kind}_lag_seconds"]
        assert value is None or value >= 0
    assert result["subscriptions"] == []
    assert result["checks"] == [], result["checks"]

    # ---- subscriber: real values, password redacted, healthy ------------------------------------
    result = info(sub)
    assert result["changed"] is False
    state = by_name(result["subscriptions"], subscription)
    assert state["enabled"] is True
    assert state["publications"] == [publication]
    assert state["slot_name"] == subscription
    assert "password=********" in state["conninfo"]
    assert f"port={pub.server.port}" in state["conninfo"]
    assert secret not in result.output
    assert state["apply_worker_pid"]
    assert [w["type"] for w in state["workers"]] == ["apply"]
    assert state["received_lsn"]
    # The last commit applied from the publisher (a superuser reads the replication origin), not past the publisher.
    assert pub.server.scalar("SELECT %s::pg_lsn <= pg_current_wal_lsn()", [state["origin_lsn"]])
    assert state["tables"] == [
        {
            "name": "public.books",
            "schema": "public",
            "table": "books",
            "state": "ready",
            "state_code": "r",
            "lsn": state["tables"][0]["lsn"],
        }
    ]
    assert state["table_states"] == {"ready": 1}
    assert state["tables_not_ready"] == 0
    if sub.server.major >= 15:
        assert state["apply_error_count"] == 0
        assert state["sync_error_count"] == 0
    if sub.server.major >= 18:
        assert set(state["conflicts"].values()) == {0}
    assert result["subscription_counts"]["database"] == 1
    assert result["subscription_counts"]["cluster"] >= 1
    assert result["checks"] == [], result["checks"]

    # ---- gather returns only what was asked; check mode reads the same -------------------------
    result = info(pub, check=True, gather=["slots", "senders"])
    assert result["changed"] is False
    assert [k for k in SUBSET_KEYS if k in result] == ["slots", "senders"]
    assert by_name(result["slots"], subscription)["active"] is True

    # ---- provoke the findings -----------------------------------------------------------------
    idle_slot = unique("idle")
    extra_pub, others_pub, off_sub = unique("extra_pub"), unique("others_pub"), unique("off_sub")
    pub.execute(
        sql.SQL(
            "CREATE TABLE nopk (a int, b text); CREATE TABLE counters (id serial PRIMARY KEY, n int);"
            " CREATE TABLE others (id int PRIMARY KEY);"
            " CREATE PUBLICATION {} FOR TABLE nopk, counters; CREATE PUBLICATION {} FOR TABLE others;"
            " ALTER PUBLICATION {} SET (publish = 'insert, update, delete')"
        ).format(sql.Identifier(extra_pub), sql.Identifier(others_pub), sql.Identifier(publication))
    )
    pub.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [idle_slot])
    pub.execute("INSERT INTO counters (n) SELECT g FROM generate_series(1, 100) g")
    row_filter = pub.server.major >= 15
    if row_filter:  # PostgreSQL really refuses what the finding says it refuses.
        with pytest.raises(psycopg.Error, match="replica identity"):
            pub.execute("UPDATE books SET sku = sku WHERE id = 2")
    # Not ready: a disabled subscription never synchronizes its table.
    sub.execute("CREATE TABLE others (id int PRIMARY KEY)")
    subscribe(sub, off_sub, pub, others_pub, enabled=False)
    # A conflict: the row exists on the subscriber, the publisher inserts it too.
    sub.execute("INSERT INTO books (id, sku, title, topic) VALUES (100, 1, 'local', 'leadership')")
    pub.execute("INSERT INTO books (id, sku, title, topic) VALUES (100, 1, 'remote', 'leadership')")
    if sub.server.major >= 15:
        wait_until(
            lambda: sub.scalar(
                "SELECT NOT s.subenabled AND st.apply_error_count > 0 FROM pg_subscription s"
                " JOIN pg_stat_subscription_stats st ON st.subid = s.oid WHERE s.subname = %s",
                [subscription],
            ),
            timeout=60,
            message=f"{subscription} disabled after an apply error",
        )
    else:
        sub.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(sql.Identifier(subscription)))

    result = info(pub, gather=["checks"], retained_wal_threshold="1kB")
    assert [k for k in SUBSET_KEYS if k in result] == ["checks"]
    found = codes(result)
    for code in ("replica_identity_missing", "sequences_not_replicated", "slot_inactive_retaining_wal"):
        assert code in found, result["checks"]
    assert ("row_filter_outside_replica_identity" in found) is row_filter
    assert "column_list_lacks_replica_identity" not in found
    messages = {c["code"]: c for c in result["checks"]}
    assert "public.nopk" in messages["replica_identity_missing"]["message"]
    assert "public.nopk" in messages["replica_identity_missing"]["tables"]  # as data too
    assert messages["replica_identity_missing"]["severity"] == "error"
    if row_filter:
        assert "public.books" in messages["row_filter_outside_replica_identity"]["message"]
        assert "(topic)" in messages["row_filter_outside_replica_identity"]["message"]
        assert messages["row_filter_outside_replica_identity"]["tables"] == ["public.books"]
    assert "public.counters_id_seq" in messages["sequences_not_replicated"]["message"]
    assert messages["sequences_not_replicated"]["severity"] == "info"
    # One finding per slot: the disabled subscriptions' slots may retain more than 1kB too, by timing.
    slot_findings = [c["message"] for c in result["checks"] if c["code"] == "slot_inactive_retaining_wal"]
    assert any(idle_slot in message for message in slot_findings), slot_findings
    with_tables = {"replica_identity_missing", "row_filter_outside_replica_identity"}
    assert all(
        set(c) == {"severity", "code", "message", "hint", *(["tables"] if c["code"] in with_tables else [])}
        and c["hint"]
        for c in result["checks"]
    )

    result = info(sub, gather=["subscriptions", "checks"])
    assert [k for k in SUBSET_KEYS if k in result] == ["subscriptions", "subscription_counts", "checks"]
    found = codes(result)
    assert "subscription_disabled" in found
    assert "tables_not_ready" in found
    messages = {c["code"]: c["message"] for c in result["checks"]}
    assert subscription in messages["subscription_disabled"]
    assert off_sub in messages["subscription_disabled"]
    assert off_sub in messages["tables_not_ready"]
    off_state = by_name(result["subscriptions"], off_sub)
    assert off_state["enabled"] is False
    assert off_state["tables"][0]["state"] == "init"
    assert off_state["tables_not_ready"] == 1
    if sub.server.major >= 15:
        assert "subscription_errors" in found
        assert by_name(result["subscriptions"], subscription)["apply_error_count"] > 0
    if sub.server.major >= 18:
        assert "subscription_conflicts" in found
        assert by_name(result["subscriptions"], subscription)["conflicts"]["insert_exists"] > 0
    assert secret not in result.output


def test_server_findings_on_a_private_server(pg_server, pg_server_factory):
    """Pending wal_level change, low limits and a lost slot; the pending change undone again."""
    server = pg_server_factory(
        pg_server.major,
        name=f"pg{pg_server.major}-limits",
        settings={
            "max_replication_slots": 1,
            "max_wal_senders": 0,
            "max_logical_replication_workers": 0,
            "max_worker_processes": 1,
            "max_slot_wal_keep_size": "1MB",
        },
    )
    secret = secrets.token_urlsafe(12)
    server.execute("CREATE PUBLICATION p FOR ALL TABLES")
    server.execute(
        sql.SQL("CREATE SUBSCRIPTION s CONNECTION {} PUBLICATION p WITH (connect = false)").format(
            sql.Literal(f"host=127.0.0.1 port=1 dbname=nowhere user=x password={secret}")
        )
    )
    server.execute("ALTER SUBSCRIPTION s ENABLE")
    server.execute("SELECT pg_create_logical_replication_slot('lost_slot', 'pgoutput')")
    server.execute("CREATE TABLE walgen (x int)")
    for _segment in range(3):
        server.execute("INSERT INTO walgen VALUES (1)")
        server.execute("SELECT pg_switch_wal()")
    server.execute("CHECKPOINT")
    assert server.scalar("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lost_slot'") == "lost"
    server.execute("ALTER SYSTEM SET wal_level = replica")

    args = {**server.login_args("postgres"), "gather": ["server", "subscriptions", "checks"]}
    result = run_module(MODULE, args)
    assert result["server"]["wal_level"] == "logical"
    assert result["server"]["wal_level_pending"] == "replica"
    assert result["server"]["wal_level_pending_restart"] is True
    assert result["server"]["max_slot_wal_keep_size"] == 1024 * 1024
    found = {c["code"]: c for c in result["checks"]}
    assert found["wal_level_pending"]["severity"] == "error"
    assert "replica" in found["wal_level_pending"]["message"]
    assert found["max_replication_slots_too_low"]["severity"] == "warning"
    assert found["max_wal_senders_too_low"]["severity"] == "error"
    assert found["max_logical_replication_workers_too_low"]["severity"] == "error"
    assert found["max_worker_processes_too_low"]["severity"] == "error"
    assert found["slot_wal_lost"]["severity"] == "error"
    assert "lost_slot" in found["slot_wal_lost"]["message"]
    assert "subscription_not_running" in found
    assert "slot_inactive_retaining_wal" not in found  # a lost slot retains nothing
    assert result["subscriptions"][0]["conninfo"].endswith("password=********")
    assert secret not in result.output

    server.execute("ALTER SYSTEM RESET wal_level")
    result = run_module(MODULE, {**args, "gather": ["checks"]})
    assert "wal_level_pending" not in codes(result)
    assert "max_wal_senders_too_low" in codes(result)


def test_invalid_threshold_fails_before_connecting():
    args = {"login_host": "127.0.0.1", "login_port": 1, "retained_wal_threshold": "lots"}
    result = run_module(MODULE, args, expect_fail=True)
    assert "retained_wal_threshold" in result["msg"]
    assert "lots" in result["msg"]


# ------------------------------------------------------------------------------------------------
# fail_on_connection_error
# ------------------------------------------------------------------------------------------------

UNREACHABLE_KEYS = {"changed", "queries", "reachable", "database", "error", "checks"}


def assert_unreachable(result, *expected):
    """``reachable: false``, only the documented keys, and the one node_unreachable finding naming the error."""
    assert result.get("failed") is not True, result
    assert result["reachable"] is False
    assert result["changed"] is False
    assert result["queries"] == []
    assert UNREACHABLE_KEYS <= set(result), result
    assert not set(result) & set(SUBSET_KEYS[:-1]), f"facts returned for an unreachable server: {sorted(result)}"
    for text in expected:
        assert text in result["error"], result["error"]
    [check] = result["checks"]
    assert check["severity"] == "error"
    assert check["code"] == "node_unreachable"
    assert result["error"] in check["message"]
    assert "pg_hba.conf" in check["hint"]


def test_unreachable_server_is_a_finding(pg_server, pg_server_factory):
    """Stopped server, closed port, refused password: reachable false and a finding; the default still fails."""
    stopped = pg_server_factory(pg_server.major, name=f"pg{pg_server.major}-stopped")
    stopped_args = stopped.login_args("publisher")
    stopped.stop()
    tolerant = {**stopped_args, "fail_on_connection_error": False}

    result = run_module(MODULE, tolerant)
    assert_unreachable(result, f"port {stopped.port}", "database publisher", "Connection refused")
    assert result["database"] == "publisher"
    assert stopped.password not in result.output

    # The same through ansible-playbook -vvv: the task succeeds and no password is printed. With it, in
    # the same run (one controller start), a running server that refuses the password (checked below).
    wrong = f"wrong-{secrets.token_hex(8)}"
    args = {**pg_server.login_args(), "login_password": wrong, "fail_on_connection_error": False}
    verbose, verbose_wrong = run_modules([ModuleCall(MODULE, tolerant), ModuleCall(MODULE, args)], verbosity=3)
    assert verbose.rc == 0
    assert_unreachable(verbose, f"port {stopped.port}")
    assert stopped.password not in verbose.output

    # The default (true) is today's behaviour: the task fails with the connection error.
    failed = run_module(MODULE, stopped_args, expect_fail=True)
    assert f"port {stopped.port}" in failed["msg"]
    assert "Connection refused" in failed["msg"]
    assert "reachable" not in failed
    assert stopped.password not in failed.output
    failed = run_module(MODULE, stopped_args, expect_fail=True, verbosity=3)
    assert failed.rc == 2
    assert stopped.password not in failed.output

    # Nothing listens on the port at all.
    port = free_port()
    result = run_module(MODULE, {**tolerant, "login_port": port, "gather": ["server"]})
    assert_unreachable(result, f"port {port}")

    # A running server that refuses the password: the wrong password is not printed either.
    result = run_module(MODULE, args)
    assert_unreachable(result, "password authentication failed")
    assert wrong not in result.output
    assert_unreachable(verbose_wrong, "password authentication failed")
    assert wrong not in verbose_wrong.output
    assert pg_server.password not in verbose_wrong.output

    # Reachable: reachable true and the facts as usual.
    result = run_module(MODULE, {**pg_server.login_args(), "gather": ["server"], "fail_on_connection_error": False})
    assert result["reachable"] is True
    assert result["server"]["major"] == pg_server.major
    assert "error" not in result


def read_while_terminated(server, args):
    """Run the module while its session waits on a lock, and terminate that session meanwhile.

    Another session holds ACCESS EXCLUSIVE on ``pg_publication``, which the checks read; a thread
    waits until the module's backend waits for that lock and terminates it (``pg_terminate_backend``,
    what a fast shutdown or an administrator does): the server closes the connection mid-read.
    Should the thread fail, it terminates the lock holder instead, so the module cannot hang.
    """
    terminated = []
    waiting = (
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'"
        " AND pid <> pg_backend_pid()"
    )

    with server.connect(autocommit=False) as locker:
        locker.execute("LOCK TABLE pg_catalog.pg_publication IN ACCESS EXCLUSIVE MODE")
        locker_pid = locker.info.backend_pid

        def terminate():
            with server.connect() as conn:
                try:
                    pid = wait_until(
                        lambda: server.scalar(waiting, [APPLICATION_NAME]),
                        timeout=30,
                        message="the module's session waiting for the lock",
                    )
                    terminated.append(conn.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone())
                finally:
                    if not terminated:
                        conn.execute("SELECT pg_terminate_backend(%s)", [locker_pid])

        thread = threading.Thread(target=terminate)
        thread.start()
        try:
            result = run_module(MODULE, args, expect_fail=args.get("fail_on_connection_error", True))
        finally:
            thread.join(60)
            with contextlib.suppress(psycopg.Error):
                locker.rollback()
    assert len(terminated) == 1, "the module's session was not terminated while it read"
    return result


def test_connection_lost_while_reading(pg_server, pg_server_factory):
    """The server closes the connection mid-read: a clean finding (tolerant) or a clean failure (default)."""
    server = pg_server_factory(pg_server.major, name=f"pg{pg_server.major}-terminated")
    args = {**server.login_args(), "gather": ["server", "checks"]}

    result = read_while_terminated(server, {**args, "fail_on_connection_error": False})
    assert_unreachable(result, "was lost while reading replication facts", "57P01", f"port {server.port}")
    assert "commit failed" not in result.output
    assert server.password not in result.output

    failed = read_while_terminated(server, args)
    assert failed.failed
    assert "was lost while reading replication facts" in failed["msg"]
    assert "57P01" in failed["msg"]
    assert "commit failed" not in failed["msg"]
    assert "exception" not in failed
    assert server.password not in failed.output

    # The server itself is fine: the next read works.
    assert run_module(MODULE, args)["server"]["major"] == server.major
