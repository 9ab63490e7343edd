"""inventium.logical_replication.subscription against real publisher/subscriber pairs, run through Ansible.

Every scenario asserts the real catalog state (``pg_subscription``, ``pg_subscription_rel``, the
publisher's ``pg_replication_slots``) read here with plain SQL, and the data on both sides (counts and
an ``md5`` checksum). Each test works in fresh databases (``pg_pair_db``) on the session's shared
pairs (same major and lowest -> highest); tests that stop a publisher use a private server.
"""

from __future__ import annotations

import re
import secrets
import socket
import time

import pytest
from pg_harness import lean_pair_combos, pair_combos, pg_pair_params, selected_majors, wait_until
from psycopg import sql
from support.ansible import ModuleCall, run_module, run_modules

from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import parse_conninfo

MODULE = "subscription"
ROWS = 100_000
SENTINEL = 'Zq9 SentinelPa\'ss\\wo=rd "QX" end'
# Pieces of SENTINEL in every form it could take (raw, SQL-quoted, conninfo-escaped, E'' literal).
SENTINEL_FRAGMENTS = ("SentinelPa", "wo=rd", '"QX"', "Pa'ss", "Pa''ss", "Pa\\'ss", "Pa\\\\''ss", "ss\\wo", "Zq9 ")


_MAJORS = selected_majors()
_LOW, _HIGH = min(_MAJORS), max(_MAJORS)
# Version-independent behaviour runs on two pairs only (the machine is small): lowest same-major and
# the cross-version pair.
LEAN_PAIRS = pg_pair_params(lean_pair_combos(_MAJORS))
# Behaviour that depends on the subscriber's major only: same-major pairs.
SAME_MAJOR_PAIRS = pytest.mark.parametrize(
    "pg_pair", [pytest.param(c, id=f"pub{c[0]}-sub{c[1]}") for c in pair_combos(_MAJORS) if c[0] == c[1]], indirect=True
)

# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def publisher_of(db, **extra):
    """The module's ``publisher`` option for a publisher database."""
    server = db.server
    return {
        "host": server.host,
        "port": server.port,
        "dbname": db.name,
        "user": server.user,
        "password": server.password,
        "connect_timeout": 5,
        **extra,
    }


def sub_args(dbs, name, **kwargs):
    args = {**dbs.subscriber.login_args(), "name": name}
    args.setdefault("publisher", publisher_of(dbs.publisher))
    args.update(kwargs)
    if args["publisher"] is None:  # publisher=None: use conninfo instead (Ansible counts a null as given)
        del args["publisher"]
    return args


def catalog(db, name):
    """The subscription row as a dict (version-dependent columns included), or None."""
    rows = db.execute(
        "SELECT to_jsonb(s) - 'subconninfo' FROM pg_subscription s"
        " WHERE subname = %s AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        [name],
    )
    return rows[0][0] if rows else None


def rel_states(db, name):
    return dict(
        db.execute(
            "SELECT r.srrelid::regclass::text, r.srsubstate::text FROM pg_subscription_rel r"
            " JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = %s",
            [name],
        )
    )


def slots(db):
    return sorted(r[0] for r in db.server.execute("SELECT slot_name FROM pg_replication_slots"))


def checksum(db, table="items"):
    return db.execute(
        sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(id::text || ':' || coalesce(v, ''), ',' ORDER BY id), ''))"
            " FROM {}"
        ).format(sql.Identifier(table))
    )[0]


def make_table(dbs, table="items", rows=0, publication=None):
    ddl = sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, v text)").format(sql.Identifier(table))
    dbs.publisher.execute(ddl)
    dbs.subscriber.execute(ddl)
    if rows:
        dbs.publisher.execute(
            sql.SQL("INSERT INTO {} SELECT g, md5(g::text) FROM generate_series(1, %s) g").format(
                sql.Identifier(table)
            ),
            [rows],
        )
    if publication:
        dbs.publisher.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(publication), sql.Identifier(table))
        )


def wait_equal(dbs, table="items", timeout=30):
    wait_until(
        lambda: checksum(dbs.publisher, table) == checksum(dbs.subscriber, table),
        timeout=timeout,
        message=lambda: f"{table} in sync: pub {checksum(dbs.publisher, table)} sub {checksum(dbs.subscriber, table)}",
    )


def sub_name():
    return f"sub_{secrets.token_hex(4)}"


def assert_no_sentinel(text):
    for fragment in SENTINEL_FRAGMENTS:
        assert fragment not in text, f"password fragment {fragment!r} in output"


# ----------------------------------------------------------------------------------------------
# create + wait, idempotence, check mode, diff, drop
# ----------------------------------------------------------------------------------------------


def test_create_wait_idempotent_check_diff_drop(pg_pair_db):
    dbs = pg_pair_db
    make_table(dbs, rows=ROWS, publication="items_pub")
    name = sub_name()
    args = sub_args(dbs, name, publications=["items_pub"], wait_for_sync=True, sync_timeout=120)

    checked = run_module(MODULE, args, check=True, diff=True)
    assert checked["changed"] is True
    assert checked["queries"][0].startswith(f'CREATE SUBSCRIPTION "{name}" CONNECTION')
    assert checked["diff"]["before"] == {}
    assert checked["diff"]["after"]["publications"] == ["items_pub"]
    assert "sync" not in checked
    assert catalog(dbs.subscriber, name) is None
    assert name not in slots(dbs.publisher)  # no remote side effect

    created = run_module(MODULE, args, diff=True)
    assert created["changed"] is True
    assert checksum(dbs.publisher) == checksum(dbs.subscriber)
    assert checksum(dbs.subscriber)[0] == ROWS
    assert created["sync"]["synced"] is True
    assert created["subscription"]["tables"] == [
        {"name": "public.items", "state": "ready", "lsn": created["subscription"]["tables"][0]["lsn"]}
    ]
    assert rel_states(dbs.subscriber, name) == {"items": "r"}
    sub = created["subscription"]
    assert sub["enabled"] is True
    assert sub["slot_name"] == name
    assert sub["publications"] == ["items_pub"]
    assert "password=********" in sub["conninfo"]
    assert dbs.publisher.server.password not in created.output
    assert created["diff"]["before"] == {}
    assert created["diff"]["after"]["name"] == name
    assert name in slots(dbs.publisher)

    again = run_module(MODULE, args, diff=True)
    assert again["changed"] is False
    assert again["queries"] == []
    assert again["sync"]["polls"] == 1

    # replication keeps running
    dbs.publisher.execute("INSERT INTO items VALUES (%s, 'new')", [ROWS + 1])
    wait_equal(dbs)

    # drop: check mode changes nothing, then the slot on the (reachable) publisher goes too
    absent = {**dbs.subscriber.login_args(), "name": name, "state": "absent"}
    checked = run_module(MODULE, absent, check=True, diff=True)
    assert checked["changed"] is True
    assert checked["diff"]["after"] == {}
    assert catalog(dbs.subscriber, name) is not None
    dropped = run_module(MODULE, absent)
    assert dropped["changed"] is True
    assert dropped["queries"] == [f'DROP SUBSCRIPTION "{name}"']
    assert catalog(dbs.subscriber, name) is None
    assert name not in slots(dbs.publisher)
    assert run_module(MODULE, absent)["changed"] is False


# ----------------------------------------------------------------------------------------------
# options altered in place
# ----------------------------------------------------------------------------------------------


def alterable_options(major):
    """Non-default values of every option ALTER SUBSCRIPTION ... SET changes on ``major``, and the catalog check."""
    options = {"synchronous_commit": ("remote_apply", "subsynccommit", "remote_apply"), "slot_name": None}
    if major >= 14:
        options["binary"] = (True, "subbinary", True)
        options["streaming"] = ("on", "substream", "t" if major >= 16 else True)
    if major >= 15:
        options["disable_on_error"] = (True, "subdisableonerr", True)
    if major >= 16:
        options["streaming"] = ("parallel" if major < 18 else "on", "substream", "p" if major < 18 else "t")
        options["origin"] = ("none", "suborigin", "none")
        options["run_as_owner"] = (True, "subrunasowner", True)
        options["password_required"] = (False, "subpasswordrequired", False)
    return options


@SAME_MAJOR_PAIRS
def test_alter_every_option_in_place(pg_pair_db):
    dbs = pg_pair_db
    major = dbs.subscriber.server.major
    make_table(dbs, rows=10, publication="items_pub")
    name = sub_name()
    base = sub_args(dbs, name, publications=["items_pub"], wait_for_sync=True)
    run_module(MODULE, base)
    before = catalog(dbs.subscriber, name)

    wanted = {k: v[0] for k, v in alterable_options(major).items() if v}
    # slot_name points at a slot that exists (created here): the worker keeps running
    dbs.publisher.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [name + "_other"])
    wanted["slot_name"] = name + "_other"

    checked = run_module(MODULE, {**base, **wanted}, check=True, diff=True)
    assert checked["changed"] is True
    assert catalog(dbs.subscriber, name) == before
    assert len(checked["queries"]) == 1
    assert checked["queries"][0].startswith(f'ALTER SUBSCRIPTION "{name}" SET (')

    changed = run_module(MODULE, {**base, **wanted}, diff=True)
    assert changed["changed"] is True
    assert changed["queries"] == checked["queries"]
    row = catalog(dbs.subscriber, name)
    for option, spec in alterable_options(major).items():
        if spec:
            value, column, stored = spec
            assert row[column] == stored, (option, row[column])
            assert changed["subscription"][option] == value
    assert row["subslotname"] == name + "_other"
    diff = changed["diff"]
    assert diff["before"]["synchronous_commit"] == "off"
    assert diff["after"]["synchronous_commit"] == "remote_apply"
    assert checked["diff"]["after"] == diff["after"]

    assert run_module(MODULE, {**base, **wanted})["changed"] is False

    # disable and enable
    off = run_module(MODULE, {**base, "wait_for_sync": False, "enabled": False})
    assert off["queries"] == [f'ALTER SUBSCRIPTION "{name}" DISABLE']
    assert catalog(dbs.subscriber, name)["subenabled"] is False
    on = run_module(MODULE, {**base, "enabled": True, "slot_name": name})
    assert catalog(dbs.subscriber, name)["subenabled"] is True
    assert on["queries"][-1] == f'ALTER SUBSCRIPTION "{name}" ENABLE'
    dbs.publisher.execute("INSERT INTO items VALUES (1000, 'after re-enable')")
    wait_equal(dbs)


@LEAN_PAIRS
def test_connection_change_is_semantic(pg_pair_db):
    dbs = pg_pair_db
    make_table(dbs, rows=5, publication="items_pub")
    name = sub_name()
    pub = dbs.publisher
    run_module(MODULE, sub_args(dbs, name, publications=["items_pub"]))
    # the same connection as a raw key/value string in another order and as a URI: no change
    kv = (
        f"dbname={pub.name} user={pub.server.user} connect_timeout=5 "
        f"password='{pub.server.password}' host={pub.server.host} port={pub.server.port}"
    )
    assert run_module(MODULE, sub_args(dbs, name, publisher=None, conninfo=kv))["changed"] is False
    uri = (
        f"postgresql://{pub.server.user}:{pub.server.password}@{pub.server.host}:{pub.server.port}/{pub.name}"
        "?connect_timeout=5"
    )
    assert run_module(MODULE, sub_args(dbs, name, publisher=None, conninfo=uri))["changed"] is False
    # a different application_name: ALTER ... CONNECTION, the password stays hidden
    result = run_module(MODULE, sub_args(dbs, name, publisher=publisher_of(pub, application_name="my app")), diff=True)
    assert result["changed"] is True
    assert len(result["queries"]) == 1
    assert result["queries"][0].startswith(f'ALTER SUBSCRIPTION "{name}" CONNECTION ')
    assert "password=********" in result["queries"][0]
    assert result["subscription"]["conninfo"].endswith("application_name='my app'")
    assert result["diff"]["before"]["conninfo"] != result["diff"]["after"]["conninfo"]
    assert pub.server.password not in result.output
    wait_until(
        lambda: pub.server.scalar("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'my app'"),
        message="the walsender with the new application_name",
    )


@LEAN_PAIRS
def test_tcp_keepalives_in_the_connection(pg_pair_db):
    """The subscriber role's keepalive keys: added in place (the apply worker reconnects with them), then no change."""
    dbs = pg_pair_db
    make_table(dbs, rows=5, publication="items_pub")
    name = sub_name()
    pub = dbs.publisher
    run_module(MODULE, sub_args(dbs, name, publications=["items_pub"], wait_for_sync=True))
    before = pub.server.scalar("SELECT pid FROM pg_stat_replication WHERE application_name = %s", [name])
    keepalives = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 5, "keepalives_count": 3,
                  "tcp_user_timeout": 20000}  # fmt: skip
    args = sub_args(dbs, name, publications=["items_pub"], publisher=publisher_of(pub, **keepalives))
    result = run_module(MODULE, args, diff=True)
    assert result["changed"] is True
    assert len(result["queries"]) == 1
    assert result["queries"][0].startswith(f'ALTER SUBSCRIPTION "{name}" CONNECTION ')
    assert "password=********" in result["queries"][0]
    assert pub.server.password not in result.output
    stored = dbs.subscriber.execute("SELECT subconninfo FROM pg_subscription WHERE subname = %s", [name])[0][0]
    assert {k: v for k, v in parse_conninfo(stored).items() if k in keepalives} == {
        k: str(v) for k, v in keepalives.items()
    }
    assert run_module(MODULE, args)["changed"] is False
    # the server accepted the keys: the apply worker reconnected with the new connection and replicates
    wait_until(
        lambda: pub.server.scalar(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = %s AND pid <> %s", [name, before]
        ),
        message="the walsender of the reconnected apply worker",
    )
    pub.execute("INSERT INTO items VALUES (1000, 'after the keepalives')")
    wait_equal(dbs)


# ----------------------------------------------------------------------------------------------
# publications and refresh
# ----------------------------------------------------------------------------------------------


@LEAN_PAIRS
def test_publications_add_drop_set_and_refresh(pg_pair_db):
    dbs = pg_pair_db
    for table, pub in (("a", "pub_a"), ("b", "pub_b"), ("c", "pub_c")):
        make_table(dbs, table=table, rows=50, publication=pub)
    name = sub_name()
    base = sub_args(dbs, name, wait_for_sync=True)
    run_module(MODULE, {**base, "publications": ["pub_a"]})
    assert rel_states(dbs.subscriber, name) == {"a": "r"}

    added = run_module(MODULE, {**base, "publications": ["pub_a", "pub_b"]})
    assert added["queries"] == [f'ALTER SUBSCRIPTION "{name}" ADD PUBLICATION "pub_b" WITH (refresh = true)']
    assert rel_states(dbs.subscriber, name) == {"a": "r", "b": "r"}
    wait_equal(dbs, "b")
    assert run_module(MODULE, {**base, "publications": ["pub_b", "pub_a"]})["changed"] is False  # order

    dropped = run_module(MODULE, {**base, "publications": ["pub_b"]})
    assert dropped["queries"] == [f'ALTER SUBSCRIPTION "{name}" DROP PUBLICATION "pub_a" WITH (refresh = true)']
    assert rel_states(dbs.subscriber, name) == {"b": "r"}

    swapped = run_module(MODULE, {**base, "publications": ["pub_c", "pub_a"], "copy_data": False})
    assert swapped["queries"] == [
        f'ALTER SUBSCRIPTION "{name}" SET PUBLICATION "pub_c", "pub_a" WITH (refresh = true, copy_data = false)'
    ]
    assert catalog(dbs.subscriber, name)["subpublications"] == ["pub_c", "pub_a"]
    assert rel_states(dbs.subscriber, name) == {"a": "r", "c": "r"}
    assert checksum(dbs.subscriber, "c")[0] == 0  # copy_data: false

    # refresh: a table added to a publication on the publisher
    make_table(dbs, table="d", rows=20)
    dbs.publisher.execute("ALTER PUBLICATION pub_c ADD TABLE d")
    refreshed = run_module(MODULE, {**base, "refresh": True})
    assert refreshed["changed"] is True
    assert refreshed["queries"] == [f'ALTER SUBSCRIPTION "{name}" REFRESH PUBLICATION']
    assert rel_states(dbs.subscriber, name) == {"a": "r", "c": "r", "d": "r"}
    wait_equal(dbs, "d")
    again = run_module(MODULE, {**base, "refresh": True})
    assert again["changed"] is False  # the table list did not change
    assert run_module(MODULE, {**base, "refresh": True}, check=True)["changed"] is True  # unknowable in check mode

    # refreshed before it is disabled
    off = run_module(MODULE, {**base, "wait_for_sync": False, "enabled": False, "publications": ["pub_a"]})
    assert off["queries"] == [
        f'ALTER SUBSCRIPTION "{name}" DROP PUBLICATION "pub_c" WITH (refresh = true)',
        f'ALTER SUBSCRIPTION "{name}" DISABLE',
    ]
    assert rel_states(dbs.subscriber, name) == {"a": "r"}
    # disabled: publications change without a refresh, with a warning
    quiet = run_module(MODULE, {**base, "wait_for_sync": False, "publications": ["pub_a", "pub_b"]})
    assert quiet["queries"] == [f'ALTER SUBSCRIPTION "{name}" ADD PUBLICATION "pub_b" WITH (refresh = false)']
    assert "without a refresh" in " ".join(quiet["warnings"])
    assert rel_states(dbs.subscriber, name) == {"a": "r"}
    refresh_disabled = run_module(MODULE, {**base, "wait_for_sync": False, "refresh": True}, expect_fail=True)
    assert "needs an enabled subscription" in refresh_disabled["msg"]


# ----------------------------------------------------------------------------------------------
# version gates and options that cannot be altered
# ----------------------------------------------------------------------------------------------

GATED = [
    ("binary", True, 14),
    ("streaming", "on", 14),
    ("two_phase", True, 15),
    ("disable_on_error", True, 15),
    ("skip_lsn", "0/1", 15),
    ("streaming", "parallel", 16),
    ("origin", "none", 16),
    ("run_as_owner", True, 16),
    ("password_required", True, 16),
    ("failover", True, 17),
]


@SAME_MAJOR_PAIRS
def test_version_gates_and_unalterable_options(pg_pair_db):
    dbs = pg_pair_db
    major = dbs.subscriber.server.major
    make_table(dbs, rows=3, publication="items_pub")
    name = sub_name()
    base = sub_args(dbs, name, publications=["items_pub"])
    for option, value, minimum in GATED:
        if major >= minimum:
            continue
        failed = run_module(MODULE, {**base, option: value}, expect_fail=True)
        assert f"option {option} requires PostgreSQL >= {minimum} (server is {major})" in failed["msg"]
    assert catalog(dbs.subscriber, name) is None

    run_module(MODULE, {**base, "wait_for_sync": True})
    if major >= 18:
        return  # every option changes in place: test_disabled_only_options_altered_in_place_while_enabled
    before = catalog(dbs.subscriber, name)
    failed = run_module(MODULE, {**base, "two_phase": True}, expect_fail=True)
    assert "two_phase: ALTER SUBSCRIPTION can change it from PostgreSQL 18" in failed["msg"]
    assert "recreate: true" in failed["msg"]
    assert failed["queries"] == []
    assert catalog(dbs.subscriber, name) == before

    # recreate: drop and create again, with a warning (copy_data: false since the rows are there)
    recreated = run_module(MODULE, {**base, "two_phase": True, "recreate": True, "copy_data": False})
    assert recreated["queries"][0] == f'DROP SUBSCRIPTION "{name}"'
    assert "two_phase = true" in recreated["queries"][1]
    assert "copy_data = false" in recreated["queries"][1]
    assert any("dropped and re-created" in w for w in recreated["warnings"])
    row = catalog(dbs.subscriber, name)
    assert row["oid"] != before["oid"]
    assert row["subtwophasestate"] in ("p", "e")
    assert run_module(MODULE, {**base, "two_phase": True})["changed"] is False
    dbs.publisher.execute("INSERT INTO items VALUES (100, 'x')")
    wait_equal(dbs)


@pytest.mark.min_pg(17)
def test_slot_options_change_while_disabled(pg_pair_db):
    """failover (17+) and two_phase (18+) alter the publisher's slot: only while disabled, outside a transaction."""
    dbs = pg_pair_db
    major = dbs.subscriber.server.major
    make_table(dbs, rows=3, publication="items_pub")
    name = sub_name()
    base = sub_args(dbs, name, publications=["items_pub"])
    run_module(MODULE, {**base, "wait_for_sync": True})
    wanted = {"enabled": False, "failover": True}
    if major >= 18:
        wanted["two_phase"] = True
    result = run_module(MODULE, {**base, **wanted})
    assert result["queries"][0] == f'ALTER SUBSCRIPTION "{name}" DISABLE'
    assert "failover = true" in " ".join(result["queries"])
    row = catalog(dbs.subscriber, name)
    assert row["subfailover"] is True
    assert row["subenabled"] is False
    slot_failover = dbs.publisher.server.scalar(
        "SELECT failover FROM pg_replication_slots WHERE slot_name = %s", [name]
    )
    if dbs.publisher.server.major >= 17:
        assert slot_failover is True
    if major >= 18:
        assert row["subtwophasestate"] == "p"
        back = run_module(MODULE, {**base, "enabled": False, "two_phase": False, "failover": False})
        assert back["changed"] is True
        row = catalog(dbs.subscriber, name)
        assert row["subtwophasestate"] == "d"
        assert row["subfailover"] is False
    assert run_module(MODULE, {**base, "enabled": True, "wait_for_sync": True})["changed"] is True
    dbs.publisher.execute("INSERT INTO items VALUES (100, 'x')")
    wait_equal(dbs)


def publisher_slot_failover(dbs, name):
    return dbs.publisher.server.scalar("SELECT failover FROM pg_replication_slots WHERE slot_name = %s", [name])


@pytest.mark.min_pg(17)
@SAME_MAJOR_PAIRS
def test_disabled_only_options_altered_in_place_while_enabled(pg_pair_db):
    """failover (17+) and two_phase (18+) need a disabled subscription: one module call disables, alters and
    enables again, says so (temporarily_disabled), and replication goes on from the same slot."""
    dbs = pg_pair_db
    major = dbs.subscriber.server.major
    make_table(dbs, rows=3, publication="items_pub")
    name = sub_name()
    base = sub_args(dbs, name, publications=["items_pub"])
    run_module(MODULE, {**base, "wait_for_sync": True})
    oid = catalog(dbs.subscriber, name)["oid"]
    quoted = f'ALTER SUBSCRIPTION "{name}"'

    steps = [({"failover": True}, [f"{quoted} SET (failover = true)"])]
    if major >= 18:
        steps.append(({"two_phase": True}, [f"{quoted} SET (two_phase = true)"]))
        steps.append(({"two_phase": False, "failover": False}, [f"{quoted} SET (failover = false, two_phase = false)"]))
    else:
        steps.append(({"failover": False}, [f"{quoted} SET (failover = false)"]))
    for number, (options, altered) in enumerate(steps):
        before = catalog(dbs.subscriber, name)
        checked = run_module(MODULE, {**base, **options}, check=True)
        assert checked["changed"] is True
        assert checked["temporarily_disabled"] is True
        assert catalog(dbs.subscriber, name) == before
        result = run_module(MODULE, {**base, **options})
        assert result["changed"] is True
        assert result["temporarily_disabled"] is True
        assert result["queries"] == [f"{quoted} DISABLE", *altered, f"{quoted} ENABLE"]
        assert result["queries"] == checked["queries"]
        row = catalog(dbs.subscriber, name)
        assert row["oid"] == oid, "the subscription was re-created"
        assert row["subenabled"] is True
        if "failover" in options:
            assert row["subfailover"] is options["failover"]
            assert publisher_slot_failover(dbs, name) is options["failover"]
        if "two_phase" in options:
            assert row["subtwophasestate"] in (("p", "e") if options["two_phase"] else ("d",))
        again = run_module(MODULE, {**base, **options})
        assert again["changed"] is False
        assert "temporarily_disabled" not in again
        dbs.publisher.execute("INSERT INTO items VALUES (%s, 'x')", [100 + number])
        wait_equal(dbs)

    # a subscription that stays disabled is not enabled, and not said to be disabled for the change
    result = run_module(MODULE, {**base, "enabled": False, "failover": True})
    assert "temporarily_disabled" not in result
    assert result["queries"][-1] == f"{quoted} SET (failover = true)"
    row = catalog(dbs.subscriber, name)
    assert (row["subenabled"], row["subfailover"]) == (False, True)


@pytest.mark.min_pg(17)
@SAME_MAJOR_PAIRS
def test_failed_in_place_change_enables_the_subscription_again(pg_pair_db, sentinel_role):
    """The publisher refuses the slot change after the module disabled the subscription: enabled again, said so."""
    dbs = pg_pair_db
    make_table(dbs, rows=3, publication="items_pub")
    name = sub_name()
    publisher = publisher_of(dbs.publisher, user=sentinel_role, password=SENTINEL)
    base = sub_args(dbs, name, publications=["items_pub"], publisher=publisher)
    run_module(MODULE, {**base, "wait_for_sync": True})
    server = dbs.publisher.server
    server.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(sentinel_role)))
    try:
        failed = run_module(MODULE, {**base, "failover": True}, expect_fail=True)
        assert "SET (failover = true) failed" in failed["msg"]
        assert "disabled for the change, was enabled again" in failed["msg"]
        assert failed["queries"][-1] == f'ALTER SUBSCRIPTION "{name}" ENABLE'
        assert_no_sentinel(failed.output)
        row = catalog(dbs.subscriber, name)
        assert (row["subenabled"], row["subfailover"]) == (True, False)
    finally:
        server.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(sentinel_role)))
    dbs.publisher.execute("INSERT INTO items VALUES (100, 'x')")
    wait_equal(dbs)


# ----------------------------------------------------------------------------------------------
# secrets
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def sentinel_role(pg_pair_db):
    """A replication role on the publisher whose password is SENTINEL (roles are server-wide)."""
    server = pg_pair_db.publisher.server
    role = f"lr_sentinel_{secrets.token_hex(3)}"
    server.execute(
        sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(sql.Identifier(role), sql.Literal(SENTINEL))
    )
    yield role
    # a subscription left by a failed test keeps reconnecting: forbid logins first
    server.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
    server.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role])
    wait_until(
        lambda: not server.scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [role]),
        message="sessions of the sentinel role to end",
    )
    server.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@LEAN_PAIRS
def test_password_never_in_output(pg_pair_db, sentinel_role):
    dbs = pg_pair_db
    make_table(dbs, rows=10, publication="items_pub")
    name = sub_name()
    publisher = publisher_of(dbs.publisher, user=sentinel_role, password=SENTINEL)
    args = sub_args(dbs, name, publications=["items_pub"], publisher=publisher, wait_for_sync=True)
    outputs = []

    # The calls go through ansible-playbook -vvv, several to a run (one controller start each).
    checked, created = run_modules(
        [ModuleCall(MODULE, args, check=True, diff=True), ModuleCall(MODULE, args, diff=True)], verbosity=3
    )
    outputs.append(checked.output)
    outputs.append(created.output)
    assert created["changed"] is True
    assert "password=''********''" in created["queries"][0]  # conninfo-quoted inside the SQL literal
    assert "password=********" in created["subscription"]["conninfo"]
    # it really is the sentinel that connects
    assert (
        dbs.publisher.server.scalar("SELECT count(*) FROM pg_stat_replication WHERE usename = %s", [sentinel_role]) >= 1
    )
    wait_equal(dbs)

    # the stored connection holds the sentinel: idempotent with the raw key/value form as well
    stored = dbs.subscriber.execute("SELECT subconninfo FROM pg_subscription WHERE subname = %s", [name])[0][0]
    assert run_module(MODULE, sub_args(dbs, name, publisher=None, conninfo=stored))["changed"] is False

    # a change of the password (ALTER ... CONNECTION) and back, in diff mode and with -vvv
    wrong = {**args, "publisher": {**publisher, "password": SENTINEL + "2"}, "wait_for_sync": False}
    # error messages: a publication change fails on the publisher (unknown database)
    bad = {**publisher, "dbname": "no_such_db"}
    # a raw conninfo (no_log) with the sentinel, failing too
    raw = sub_args(
        dbs,
        name + "y",
        publications=["items_pub"],
        publisher=None,
        conninfo=stored.replace(dbs.publisher.name, "no_such_db"),
    )
    other, back, failed, failed_raw, broken, warned = run_modules(
        [
            ModuleCall(MODULE, wrong, diff=True),
            ModuleCall(MODULE, args, diff=True),
            ModuleCall(MODULE, sub_args(dbs, name + "x", publications=["items_pub"], publisher=bad), expect_fail=True),
            ModuleCall(MODULE, raw, expect_fail=True),
            # a malformed raw conninfo: the parser's error names no value
            ModuleCall(MODULE, {**raw, "conninfo": "host=x password=" + SENTINEL}, expect_fail=True),
            # dropping (with -vvv)
            ModuleCall(MODULE, {**dbs.subscriber.login_args(), "name": name, "state": "absent"}),
        ],
        verbosity=3,
    )
    outputs.append(other.output)
    outputs.append(back.output)
    assert back["changed"] is True
    assert "CONNECTION" in back["queries"][0]

    outputs.append(failed.output)
    assert "no_such_db" in failed["msg"]
    assert "password=''********''" in failed["msg"]
    outputs.append(failed_raw.output)
    outputs.append(broken.output)
    assert "conninfo: missing" in broken["msg"]

    outputs.append(warned.output)
    for output in outputs:
        assert_no_sentinel(output)
    assert catalog(dbs.subscriber, name) is None


# ----------------------------------------------------------------------------------------------
# dropping while the publisher is unreachable
# ----------------------------------------------------------------------------------------------


@LEAN_PAIRS
def test_drop_with_publisher_stopped(pg_pair, pg_server_factory, pg_database_factory):
    publisher = pg_server_factory(pg_pair.publisher.major, name="pub-stopped")
    pub = publisher.create_database("pubdb")
    sub = pg_database_factory(pg_pair.subscriber, "sub")
    for db in (pub, sub):
        db.execute("CREATE TABLE items (id bigint PRIMARY KEY, v text)")
    pub.execute("INSERT INTO items VALUES (1, 'a'); CREATE PUBLICATION items_pub FOR TABLE items")
    name = sub_name()
    args = {
        **sub.login_args(),
        "name": name,
        "publications": ["items_pub"],
        "wait_for_sync": True,
        "publisher": publisher_of(pub),
    }
    run_module(MODULE, args)
    assert name in [r[0] for r in publisher.execute("SELECT slot_name FROM pg_replication_slots")]
    publisher.stop()

    absent = {**sub.login_args(), "name": name, "state": "absent", "connect_timeout": 3}
    start = time.monotonic()
    dropped = run_module(MODULE, absent)
    elapsed = time.monotonic() - start
    assert elapsed < 20
    assert dropped["changed"] is True
    assert dropped["queries"] == [
        f'ALTER SUBSCRIPTION "{name}" DISABLE',
        f'ALTER SUBSCRIPTION "{name}" SET (slot_name = NONE)',
        f'DROP SUBSCRIPTION "{name}"',
    ]
    warning = " ".join(dropped["warnings"])
    assert f"the slot '{name}' is left on the publisher" in warning
    assert sub.scalar("SELECT count(*) FROM pg_subscription WHERE subname = %s", [name]) == 0

    publisher.start()
    assert name in [r[0] for r in publisher.execute("SELECT slot_name FROM pg_replication_slots")]
    publisher.execute("SELECT pg_drop_replication_slot(%s)", [name])


@LEAN_PAIRS
def test_drop_with_publisher_not_answering(pg_pair_db):
    """A publisher that accepts TCP but never answers: bounded by connect_timeout, not TCP's minutes."""
    dbs = pg_pair_db
    make_table(dbs, rows=3, publication="items_pub")
    name = sub_name()
    run_module(MODULE, sub_args(dbs, name, publications=["items_pub"], wait_for_sync=True))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        dbs.subscriber.execute(
            sql.SQL("ALTER SUBSCRIPTION {} CONNECTION {}").format(
                sql.Identifier(name), sql.Literal(f"host=127.0.0.1 port={port} dbname=x user=x")
            )
        )
        start = time.monotonic()
        dropped = run_module(
            MODULE, {**dbs.subscriber.login_args(), "name": name, "state": "absent", "connect_timeout": 2}
        )
        assert time.monotonic() - start < 15
    assert "did not answer within 2 s" in " ".join(dropped["warnings"])
    assert catalog(dbs.subscriber, name) is None
    assert name in slots(dbs.publisher)  # left behind, as the warning says (the fixture drops it)


# ----------------------------------------------------------------------------------------------
# waiting: failure evidence; conflicts resolved by fixing the row and by skip_lsn
# ----------------------------------------------------------------------------------------------


@LEAN_PAIRS
def test_wait_for_sync_fails_with_evidence(pg_pair_db):
    dbs = pg_pair_db
    make_table(dbs, rows=10, publication="items_pub")
    dbs.subscriber.execute("INSERT INTO items VALUES (5, 'conflict')")  # the initial copy hits a duplicate key
    name = sub_name()
    failed = run_module(
        MODULE, sub_args(dbs, name, publications=["items_pub"], wait_for_sync=True, sync_timeout=3), expect_fail=True
    )
    assert failed["changed"] is True  # the subscription was created
    assert "timed out after 3 s" in failed["msg"]
    assert "1 of 1 tables not ready: public.items (" in failed["msg"]
    if dbs.subscriber.server.major >= 15:
        assert "table sync errors:" in failed["msg"]
    assert failed["sync"]["synced"] is False
    assert failed["sync"]["tables_not_ready"] == 1
    # fixing the row lets the copy finish
    dbs.subscriber.execute("DELETE FROM items WHERE id = 5")
    done = run_module(MODULE, sub_args(dbs, name, publications=["items_pub"], wait_for_sync=True, sync_timeout=60))
    assert done["changed"] is False
    assert done["subscription"]["tables"][0]["state"] == "ready"
    assert checksum(dbs.publisher) == checksum(dbs.subscriber)


@pg_pair_params([(_LOW, _LOW)])
def test_a_slot_left_on_the_publisher_fails_with_the_way_out(pg_pair_db):
    """A slot of the subscription's name already on the publisher (a node re-created with an empty data
    directory, a subscription dropped without its slot): nothing is created, and the message says what to do."""
    dbs = pg_pair_db
    make_table(dbs, rows=10, publication="items_pub")
    name = sub_name()
    dbs.publisher.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [name])
    try:
        failed = run_module(MODULE, sub_args(dbs, name, publications=["items_pub"]), expect_fail=True)
        assert f'replication slot "{name}" already exists' in failed["msg"], failed["msg"]
        assert (
            "drop it on the publisher (inventium.logical_replication.replication_slot, state: absent)" in failed["msg"]
        )
        assert catalog(dbs.subscriber, name) is None
    finally:
        dbs.publisher.execute("SELECT pg_drop_replication_slot(%s)", [name])


def _finished_lsn(server, oid, since):
    text = server.log_path.read_text(errors="replace")[since:]
    found = re.findall(rf'replication origin "pg_{oid}".*?finished at ([0-9A-F]+/[0-9A-F]+)', text, re.S)
    return found[-1] if found else None


@pytest.mark.min_pg(15)
def test_conflict_fix_row_and_skip_lsn(pg_pair_db):
    dbs = pg_pair_db
    make_table(dbs, rows=100, publication="items_pub")
    name = sub_name()
    base = sub_args(dbs, name, publications=["items_pub"], wait_for_sync=True)
    oid = run_module(MODULE, base)["subscription"]["oid"]
    sub_server = dbs.subscriber.server

    def errors():
        return sub_server.scalar("SELECT apply_error_count FROM pg_stat_subscription_stats WHERE subid = %s", [oid])

    # 1. fix the row: a row the subscriber has already
    dbs.subscriber.execute("INSERT INTO items VALUES (101, 'sub only')")
    dbs.publisher.execute("INSERT INTO items VALUES (101, 'from pub'), (102, 'b')")
    wait_until(lambda: errors() >= 1, message="an apply error")
    dbs.subscriber.execute("DELETE FROM items WHERE id = 101")
    wait_equal(dbs)

    # 2. skip the transaction (the subscriber's copy of the row is identical, so the tables end up equal)
    log_offset = sub_server.log_path.stat().st_size
    dbs.subscriber.execute("INSERT INTO items VALUES (103, 'same')")
    dbs.publisher.execute("INSERT INTO items VALUES (103, 'same')")
    count = errors()
    wait_until(lambda: errors() > count and _finished_lsn(sub_server, oid, log_offset), message="a logged apply error")
    lsn = _finished_lsn(sub_server, oid, log_offset)
    checked = run_module(MODULE, {**base, "wait_for_sync": False, "skip_lsn": lsn}, check=True)
    assert checked["changed"] is True
    assert checksum(dbs.subscriber)[0] == 103
    skipped = run_module(MODULE, {**base, "skip_lsn": lsn.lower()})
    assert skipped["queries"] == [f"ALTER SUBSCRIPTION \"{name}\" SKIP (lsn = '{lsn}')"]
    dbs.publisher.execute("INSERT INTO items VALUES (104, 'after the skipped one')")
    wait_equal(dbs)
    assert checksum(dbs.publisher) == checksum(dbs.subscriber)
    assert checksum(dbs.subscriber)[0] == 104
    # the same skip_lsn again: that transaction is behind the origin, nothing to do
    assert run_module(MODULE, {**base, "skip_lsn": lsn})["changed"] is False
