"""inventium.logical_replication.subscription's ``owner``: created by the login superuser, handed to the owner.

Roles are cluster-wide, so every test creates its roles with unique names and drops them (after the
subscription) even when it fails: the shared servers must not keep them.
"""

from __future__ import annotations

import secrets
from contextlib import contextmanager

import pytest
from pg_harness import pair_combos, selected_majors, wait_until
from psycopg import sql
from support.ansible import run_module

MODULE = "subscription"
_MAJORS = selected_majors()
SAME_MAJOR_PAIRS = pytest.mark.parametrize(
    "pg_pair", [pytest.param(c, id=f"pub{c[0]}-sub{c[1]}") for c in pair_combos(_MAJORS) if c[0] == c[1]], indirect=True
)


def publisher_of(db, password=True):
    server = db.server
    publisher = {"host": server.host, "port": server.port, "dbname": db.name, "user": server.user, "connect_timeout": 5}
    if password:
        publisher["password"] = server.password
    return publisher


def owner_of(db, name):
    rows = db.execute(
        "SELECT pg_get_userbyid(subowner)::text FROM pg_subscription WHERE subname = %s"
        " AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        [name],
    )
    return rows[0][0] if rows else None


@contextmanager
def roles(db, count):
    """``count`` fresh non-superuser login roles; dropped afterwards with what they own in ``db``."""
    names = [f"subowner_{secrets.token_hex(4)}" for _index in range(count)]
    try:
        for role in names:
            db.server.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        yield names
    finally:
        for sub in db.execute(
            "SELECT subname FROM pg_subscription WHERE pg_get_userbyid(subowner) = ANY(%s)"
            " AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [names],
        ):
            db.execute(sql.SQL("ALTER SUBSCRIPTION {} OWNER TO CURRENT_USER").format(sql.Identifier(sub[0])))
        for role in names:
            db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))  # the grants on the tables
            db.server.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def setup_items(dbs, owners):
    ddl = "CREATE TABLE items (id bigint PRIMARY KEY, v text)"
    dbs.publisher.execute(ddl)
    dbs.subscriber.execute(ddl)
    dbs.publisher.execute("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 100) g")
    dbs.publisher.execute("CREATE PUBLICATION items_pub FOR TABLE items")
    for role in owners:
        # The workers run as the owner (run_as_owner) and need the table privileges then.
        dbs.subscriber.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON items TO {}").format(sql.Identifier(role))
        )


@SAME_MAJOR_PAIRS
@pytest.mark.min_pg(16)
def test_owner_create_idempotent_change_check_diff(pg_pair_db):
    dbs = pg_pair_db
    name = f"sub_{secrets.token_hex(4)}"
    with roles(dbs.subscriber, 2) as (first, second):
        setup_items(dbs, [first, second])
        args = {
            **dbs.subscriber.login_args(),
            "name": name,
            "publications": ["items_pub"],
            "publisher": publisher_of(dbs.publisher),
            "run_as_owner": True,
            "password_required": True,
            "owner": first,
            "wait_for_sync": True,
            "sync_timeout": 120,
        }
        checked = run_module(MODULE, args, check=True, diff=True)
        assert checked["changed"] is True
        assert checked["queries"][-1] == f'ALTER SUBSCRIPTION "{name}" OWNER TO "{first}"'
        assert checked["diff"]["after"]["owner"] == first
        assert owner_of(dbs.subscriber, name) is None

        created = run_module(MODULE, args, diff=True)
        assert created["changed"] is True
        assert created["queries"][0].startswith(f'CREATE SUBSCRIPTION "{name}"')
        assert created["queries"][1] == f'ALTER SUBSCRIPTION "{name}" OWNER TO "{first}"'
        assert created["subscription"]["owner"] == first
        assert owner_of(dbs.subscriber, name) == first
        assert created["sync"]["synced"] is True  # the owner's workers copied the table
        assert dbs.subscriber.execute("SELECT count(*) FROM items")[0][0] == 100

        again = run_module(MODULE, args)
        assert again["changed"] is False
        assert again["queries"] == []

        # A different owner is changed in place; check mode first changes nothing.
        args["owner"] = second
        checked = run_module(MODULE, args, check=True, diff=True)
        assert checked["changed"] is True
        assert checked["queries"] == [f'ALTER SUBSCRIPTION "{name}" OWNER TO "{second}"']
        assert checked["diff"]["before"]["owner"] == first
        assert checked["diff"]["after"]["owner"] == second
        assert owner_of(dbs.subscriber, name) == first
        changed = run_module(MODULE, args, diff=True)
        assert changed["changed"] is True
        assert changed["queries"] == [f'ALTER SUBSCRIPTION "{name}" OWNER TO "{second}"']
        assert owner_of(dbs.subscriber, name) == second
        assert run_module(MODULE, args)["changed"] is False

        # Replication keeps running under the new owner.
        dbs.publisher.execute("INSERT INTO items VALUES (101, 'after the owner change')")
        wait_until(
            lambda: dbs.subscriber.execute("SELECT count(*) FROM items")[0][0] == 101,
            timeout=30,
            message="row 101 replicated under the new owner",
        )


@SAME_MAJOR_PAIRS
def test_owner_refusals_change_nothing(pg_pair_db):
    dbs = pg_pair_db
    name = f"sub_{secrets.token_hex(4)}"
    major = dbs.subscriber.server.major
    with roles(dbs.subscriber, 1) as (owner,):
        setup_items(dbs, [owner])
        base = {**dbs.subscriber.login_args(), "name": name, "publications": ["items_pub"]}

        # A missing role: nothing created (also in the list form).
        missing = f"nobody_{secrets.token_hex(4)}"
        failed = run_module(
            MODULE, {**base, "publisher": publisher_of(dbs.publisher), "owner": missing}, expect_fail=True
        )
        assert f"owner: role {missing} does not exist" in failed["msg"]
        assert failed["queries"] == []
        assert owner_of(dbs.subscriber, name) is None
        listed = run_module(
            MODULE,
            {
                **dbs.subscriber.login_args(),
                "subscriptions": [
                    {"name": name, "publications": ["items_pub"], "publisher": publisher_of(dbs.publisher)},
                    {
                        "name": f"{name}_b",
                        "publications": ["items_pub"],
                        "publisher": publisher_of(dbs.publisher),
                        "owner": missing,
                    },
                ],
            },
            expect_fail=True,
        )
        assert f"subscriptions[1] (name={name}_b)" in listed["msg"]
        assert f"owner: role {missing} does not exist" in listed["msg"]
        assert owner_of(dbs.subscriber, name) is None  # the first item was not applied either

        if major < 16:
            failed = run_module(
                MODULE, {**base, "publisher": publisher_of(dbs.publisher), "owner": owner}, expect_fail=True
            )
            assert (
                "is not a superuser; PostgreSQL lets a non-superuser own a subscription from PostgreSQL 16"
                in (failed["msg"])
            )
            assert owner_of(dbs.subscriber, name) is None
            return

        # 16+: a non-superuser owner with password_required and no password in the connection.
        failed = run_module(
            MODULE,
            {**base, "publisher": publisher_of(dbs.publisher, password=False), "owner": owner, "enabled": False},
            expect_fail=True,
        )
        assert "password_required is true" in failed["msg"]
        assert "nothing was changed" in failed["msg"]
        assert failed["queries"] == []
        assert owner_of(dbs.subscriber, name) is None

        # The list form takes the option too: created, then handed over.
        listed = run_module(
            MODULE,
            {
                **dbs.subscriber.login_args(),
                "subscriptions": [
                    {
                        "name": name,
                        "publications": ["items_pub"],
                        "publisher": publisher_of(dbs.publisher),
                        "run_as_owner": True,
                        "owner": owner,
                    }
                ],
            },
        )
        assert listed["changed"] is True
        assert listed["subscriptions"][0]["subscription"]["owner"] == owner
        assert owner_of(dbs.subscriber, name) == owner
