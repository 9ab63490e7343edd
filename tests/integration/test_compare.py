"""inventium.logical_replication.compare against real publisher/subscriber pairs with a real subscription.

Each scenario builds the same tables on both servers, publishes them, subscribes and waits for every table to be
``ready``, then changes the subscriber behind replication's back (a row deleted, inserted or updated there is
never re-applied) and checks what ``compare`` finds: equal tables (primary key, composite key, unique index,
no key), a missing row found by its key, row filters and column lists honoured, a text key whose two sides sort
differently, tables published but not subscribed, bad input, 1M rows in chunks - and no password in any output.
"""

from __future__ import annotations

import json
import secrets
import threading
import time

import pytest
from pg_harness import pair_combos, selected_majors, wait_until
from psycopg import sql
from support.ansible import run_module

from ansible_collections.inventium.logical_replication.plugins.module_utils._replication_compare import compare_node

MODULE = "compare"

_MAJORS = selected_majors()
_LOW, _HIGH = min(_MAJORS), max(_MAJORS)
# Version-independent behaviour runs on the mixed pair only (lowest -> highest major; the machine is small).
MIXED_PAIR = pytest.mark.parametrize(
    "pg_pair",
    [pytest.param(c, id=f"pub{c[0]}-sub{c[1]}") for c in pair_combos(_MAJORS) if c == (_LOW, _HIGH)],
    indirect=True,
)

SCHEMA = """
CREATE TABLE items (id bigint PRIMARY KEY, v text, at timestamptz, amount numeric, f float8, b bytea);
CREATE TABLE pairs (a int, b text, v text, PRIMARY KEY (a, b));
CREATE TABLE uniq (code text NOT NULL, n int NOT NULL, v text);
CREATE UNIQUE INDEX uniq_code_n ON uniq (n, code);
CREATE TABLE loose (n int, v text);
CREATE TABLE partial (n int NOT NULL, m int, v text);
CREATE UNIQUE INDEX partial_n ON partial (n) WHERE n > 0;
CREATE UNIQUE INDEX partial_expr ON partial ((n + 1));
CREATE UNIQUE INDEX partial_m ON partial (m)
"""
LOAD = """
INSERT INTO items SELECT g, 'item ' || g, timestamptz '2026-01-01 00:00+02' + g * interval '1 minute', g / 7.0, g / 3.0,
  decode(md5(g::text), 'hex') FROM generate_series(1, 2500) g;
INSERT INTO pairs SELECT g % 10, 'k' || (g / 10), 'p' || g FROM generate_series(1, 600) g;
INSERT INTO uniq SELECT 'c' || g, g % 50, 'u' || g FROM generate_series(1, 300) g;
INSERT INTO loose SELECT g % 5, 'l' || g FROM generate_series(1, 40) g;
INSERT INTO partial SELECT g, g, 'p' || g FROM generate_series(1, 30) g
"""


def publisher_option(db, **extra):
    server = db.server
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "dbname": db.name,
        "connect_timeout": 5,
        **extra,
    }


def run_sql(db, script):
    for statement in script.strip().split(";\n"):
        db.execute(statement)


def subscribe(pub, sub, publications, name=None):
    """Create the subscription and wait until every table is ``ready``; its name."""
    name = name or f"sub_{secrets.token_hex(4)}"
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}").format(
            sql.Identifier(name), sql.Literal(pub.conninfo()), sql.SQL(", ").join(map(sql.Identifier, publications))
        )
    )
    wait_until(
        lambda: sub.scalar("SELECT count(*) FILTER (WHERE srsubstate <> 'r') = 0 FROM pg_subscription_rel"),
        timeout=180,
        message="every table ready",
    )
    return name


def compare(dbs, expect_fail=False, check=False, **kwargs):
    args = {**dbs.subscriber.login_args(), "publisher": publisher_option(dbs.publisher), **kwargs}
    result = run_module(MODULE, args, expect_fail=expect_fail, check=check)
    for password in (dbs.publisher.server.password, dbs.subscriber.server.password):
        assert password not in result.output
    return result


def by_table(result):
    return {t["table"]: t for t in result["tables"]}


@pytest.fixture
def dbs(pg_pair_db):
    for db in (pg_pair_db.publisher, pg_pair_db.subscriber):
        run_sql(db, SCHEMA)
    run_sql(pg_pair_db.publisher, LOAD)
    pg_pair_db.publisher.execute("CREATE PUBLICATION all_pub FOR TABLE items, pairs, uniq, loose, partial")
    return pg_pair_db


# ----------------------------------------------------------------------------------------------
# equal
# ----------------------------------------------------------------------------------------------


def test_equal_tables_by_key_unique_index_and_whole(dbs):
    name = subscribe(dbs.publisher, dbs.subscriber, ["all_pub"])
    # The subscriber's own output settings do not change a row's text (the comparison's sessions fix them).
    for setting, value in (("bytea_output", "escape"), ("TimeZone", "Asia/Kolkata"), ("extra_float_digits", "0")):
        dbs.subscriber.execute(
            sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(dbs.subscriber.name), sql.Identifier(setting), sql.Literal(value)
            )
        )
    # no subscription named: the database's only one
    result = compare(dbs, chunk_rows=1000)
    assert result["equal"] is True, result["problems"]
    assert result["changed"] is False
    assert result["subscription"] == name
    assert result["publications"] == ["all_pub"]
    assert result["problems"] == []
    assert result["queries"] == []
    assert result["caught_up_seconds"] is not None
    tables = by_table(result)
    assert sorted(tables) == ["public.items", "public.loose", "public.pairs", "public.partial", "public.uniq"]
    items = tables["public.items"]
    assert (items["method"], items["key"], items["chunks"]) == ("chunked", ["id"], 3)
    assert (items["publisher_rows"], items["subscriber_rows"]) == (2500, 2500)
    assert items["publisher_checksum"] == items["subscriber_checksum"]
    assert items["differing_chunks"] == 0
    assert items["first_difference"] is None
    assert items["reason"] is None
    assert (tables["public.pairs"]["method"], tables["public.pairs"]["key"]) == ("chunked", ["a", "b"])
    assert (tables["public.uniq"]["method"], tables["public.uniq"]["key"]) == ("chunked", ["n", "code"])
    loose = tables["public.loose"]
    assert (loose["method"], loose["key"], loose["chunks"]) == ("whole_table", [], 1)
    assert loose["equal"] is True
    assert loose["publisher_rows"] == 40
    (warning,) = [w for w in result.get("warnings", []) if "loose" in w]
    assert "public.loose has no primary key" in warning
    assert "kB" in warning  # its size, pg_size_pretty
    # unique indexes that do not make a key: partial, on an expression, over a nullable column
    partial = tables["public.partial"]
    assert (partial["method"], partial["equal"], partial["publisher_rows"]) == ("whole_table", True, 30)
    assert any("public.partial has no primary key" in w for w in result["warnings"])

    # check mode: the same answer
    checked = compare(dbs, check=True, subscription=name, chunk_rows=1000)
    assert checked["equal"] is True
    assert checked["changed"] is False
    assert [(t["table"], t["publisher_checksum"]) for t in checked["tables"]] == [
        (t["table"], t["publisher_checksum"]) for t in result["tables"]
    ]

    # The experiments' and lab tests' helper runs the same comparison and keeps its result's shape.
    login = {"login_user": dbs.publisher.server.user, "login_password": dbs.publisher.server.password}
    node = compare_node(
        {**login, "login_host": dbs.publisher.server.host, "login_port": dbs.publisher.server.port}
        | {"login_db": dbs.publisher.name},
        dbs.subscriber.login_args(),
        name,
        timeout=60,
    )
    assert node["equal"] is True, node["problems"]
    node_items = {t["table"]: t for t in node["tables"]}["public.items"]
    assert node_items == {
        "table": "public.items",
        "publisher_rows": 2500,
        "node_rows": 2500,
        "publisher_checksum": items["publisher_checksum"],
        "node_checksum": items["publisher_checksum"],
        "equal": True,
    }


# ----------------------------------------------------------------------------------------------
# differences
# ----------------------------------------------------------------------------------------------


@MIXED_PAIR
def test_rows_deleted_on_the_subscriber_are_found_by_key(dbs):
    subscribe(dbs.publisher, dbs.subscriber, ["all_pub"])
    sub = dbs.subscriber
    sub.execute("DELETE FROM items WHERE id IN (1777, 2222)")
    sub.execute("DELETE FROM pairs WHERE a = 3 AND b = 'k17'")
    sub.execute("UPDATE uniq SET v = 'changed' WHERE n = 7 AND code = 'c107'")
    sub.execute("DELETE FROM loose WHERE v = 'l9'")

    result = compare(dbs, chunk_rows=500, retries=1)
    assert result["equal"] is False
    tables = by_table(result)
    items = tables["public.items"]
    assert items["equal"] is False
    assert (items["publisher_rows"], items["subscriber_rows"]) == (2500, 2498)
    assert items["chunks"] == 6
    assert items["differing_chunks"] == 2
    assert items["first_difference"] == {
        "from_key": ["1777"],
        "to_key": ["1777"],
        "publisher_rows": 1,
        "subscriber_rows": 0,
    }
    assert tables["public.pairs"]["first_difference"] == {
        "from_key": ["3", "k17"],
        "to_key": ["3", "k17"],
        "publisher_rows": 1,
        "subscriber_rows": 0,
    }
    assert tables["public.uniq"]["first_difference"] == {
        "from_key": ["7", "c107"],
        "to_key": ["7", "c107"],
        "publisher_rows": 1,
        "subscriber_rows": 1,
    }
    loose = tables["public.loose"]
    assert (loose["equal"], loose["method"], loose["first_difference"]) == (False, "whole_table", None)
    assert (loose["publisher_rows"], loose["subscriber_rows"]) == (40, 39)
    problems = "\n".join(result["problems"])
    assert "public.items: 2 of 6 chunk(s) differ" in problems
    assert "first difference at key (id)=(1777): publisher 1 row(s), subscriber 0" in problems
    assert "first difference at key (a, b)=(3, k17)" in problems
    assert len(result["problems"]) == 4

    # only the tables asked for
    only = compare(dbs, tables=["pairs"], chunk_rows=500, retries=0)
    assert [t["table"] for t in only["tables"]] == ["public.pairs"]
    assert only["equal"] is False

    # through ansible-playbook (the controller): the same answer, the fallback as an Ansible warning
    args = {**dbs.subscriber.login_args(), "publisher": publisher_option(dbs.publisher), "tables": ["loose"]}
    played = run_module(MODULE, args, through_playbook=True)
    assert [(t["table"], t["method"], t["equal"]) for t in played["tables"]] == [("public.loose", "whole_table", False)]
    assert any("public.loose has no primary key" in w for w in played["warnings"])
    assert dbs.publisher.server.password not in played.output


@MIXED_PAIR
def test_row_filters_and_column_lists_are_honoured(pg_pair_db):
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    for db in (pub, sub):
        db.execute("CREATE TABLE books (id bigint PRIMARY KEY, title text, topic text)")
        db.execute("CREATE TABLE wide (id int PRIMARY KEY, a text, secret text)")
    pub.execute(
        "INSERT INTO books SELECT g, 'book ' || g, (ARRAY['technical', 'leadership', 'other'])[g % 3 + 1]"
        " FROM generate_series(1, 3000) g"
    )
    pub.execute("INSERT INTO wide SELECT g, 'a' || g, 'secret ' || g FROM generate_series(1, 500) g")
    pub.execute("CREATE PUBLICATION tech_pub FOR TABLE books WHERE (topic = 'technical')")
    pub.execute("CREATE PUBLICATION lead_pub FOR TABLE books WHERE (topic LIKE 'lead%')")
    pub.execute("CREATE PUBLICATION wide_pub FOR TABLE wide (id, a)")
    # an insert-only publication of a column list without the primary key: the key cannot be compared
    pub.execute("CREATE TABLE notes (id int PRIMARY KEY, body text, private text)")
    sub.execute("CREATE TABLE notes (body text)")
    pub.execute("INSERT INTO notes SELECT g, 'note ' || g, 'p' FROM generate_series(1, 50) g")
    pub.execute("CREATE PUBLICATION notes_pub FOR TABLE notes (body) WITH (publish = 'insert')")
    name = subscribe(pub, sub, ["tech_pub", "lead_pub", "wide_pub", "notes_pub"])
    assert sub.scalar("SELECT count(*) FROM books") == 2000
    assert sub.scalar("SELECT count(*) FROM wide WHERE secret IS NOT NULL") == 0

    result = compare(pg_pair_db, subscription=name, chunk_rows=300)
    assert result["equal"] is True, result["problems"]
    tables = by_table(result)
    assert (tables["public.books"]["publisher_rows"], tables["public.books"]["subscriber_rows"]) == (2000, 2000)
    assert tables["public.books"]["chunks"] == 7
    assert tables["public.wide"]["publisher_rows"] == 500
    notes = tables["public.notes"]
    assert (notes["method"], notes["equal"], notes["subscriber_rows"]) == ("whole_table", True, 50)

    # Not published: the subscriber's own value of the column outside the list does not count.
    sub.execute("UPDATE wide SET secret = 'mine' WHERE id < 10")
    # A row the filters do not let through, on the subscriber only; a published column changed.
    sub.execute("INSERT INTO books VALUES (1502, 'not sent', 'other')")
    sub.execute("UPDATE wide SET a = 'changed' WHERE id = 321")
    result = compare(pg_pair_db, subscription=name, chunk_rows=300, retries=0)
    tables = by_table(result)
    assert tables["public.books"]["first_difference"] == {
        "from_key": ["1502"],
        "to_key": ["1502"],
        "publisher_rows": 0,
        "subscriber_rows": 1,
    }
    assert tables["public.wide"]["first_difference"]["from_key"] == ["321"]
    assert tables["public.wide"]["differing_chunks"] == 1


@MIXED_PAIR
def test_partitioned_table_published_via_its_root(pg_pair_db):
    """Published through the root (publish_via_partition_root): compared as one table by the partitioned
    table's primary key on the publisher, a plain table on the subscriber."""
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    pub.execute("CREATE TABLE parted (id int, k int, v text, PRIMARY KEY (k, id)) PARTITION BY RANGE (k)")
    pub.execute("CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (5)")
    pub.execute("CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (5) TO (10)")
    sub.execute("CREATE TABLE parted (id int, k int, v text, PRIMARY KEY (k, id))")
    pub.execute("INSERT INTO parted SELECT g, g % 10, 'v' || g FROM generate_series(1, 1000) g")
    pub.execute("CREATE PUBLICATION parted_pub FOR TABLE parted WITH (publish_via_partition_root = true)")
    subscribe(pub, sub, ["parted_pub"])
    sub.execute("DELETE FROM parted WHERE id = 777")

    result = compare(pg_pair_db, chunk_rows=300, retries=0)
    (parted,) = result["tables"]
    assert (parted["table"], parted["method"], parted["key"]) == ("public.parted", "chunked", ["k", "id"])
    assert (parted["publisher_rows"], parted["subscriber_rows"]) == (1000, 999)
    assert parted["first_difference"]["from_key"] == ["7", "777"]


@MIXED_PAIR
def test_text_key_sorted_differently_on_each_side(pg_pair_db):
    """The publisher's key column sorts by ICU's root collation (a < B < b), the subscriber's by C (B < a < b):
    chunks cut in either order would hold different rows on the two sides; in C order on both they agree."""
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    pub.execute('CREATE TABLE words (w text COLLATE "und-x-icu" PRIMARY KEY, n int)')
    sub.execute('CREATE TABLE words (w text COLLATE "C" PRIMARY KEY, n int)')
    pub.execute(
        "INSERT INTO words SELECT w, row_number() OVER () FROM ("
        " SELECT DISTINCT chr(c1) || chr(c2) || g AS w"
        " FROM unnest(ARRAY[65, 66, 90, 97, 98, 122, 228, 196]) c1, unnest(ARRAY[97, 66, 122]) c2,"
        " generate_series(1, 40) g) AS x"
    )
    assert pub.scalar("SELECT count(*) FROM words") == 960
    pair = "SELECT array_agg(w ORDER BY w) FROM words WHERE w IN ('aa1', 'Ba1')"
    assert pub.scalar(pair) == ["aa1", "Ba1"]
    pub.execute("CREATE PUBLICATION words_pub FOR TABLE words")
    subscribe(pub, sub, ["words_pub"])
    assert sub.scalar(pair) == ["Ba1", "aa1"]

    result = compare(pg_pair_db, chunk_rows=50, retries=0)
    assert result["equal"] is True, result["problems"]
    (words,) = result["tables"]
    assert (words["method"], words["key"], words["chunks"]) == ("chunked", ["w"], 20)

    sub.execute("DELETE FROM words WHERE w = 'äz17'")
    sub.execute("DELETE FROM words WHERE w = 'Ba3'")
    result = compare(pg_pair_db, chunk_rows=50, retries=0)
    (words,) = result["tables"]
    assert words["differing_chunks"] == 2
    # first in C order ('B' is 0x42, 'ä' is U+00E4), not in the publisher's own collation
    assert words["first_difference"]["from_key"] == ["Ba3"]
    assert words["first_difference"]["to_key"] == ["Ba3"]


@MIXED_PAIR
def test_tables_not_subscribed_or_missing_columns_are_reported(dbs):
    pub, sub = dbs.publisher, dbs.subscriber
    subscribe(pub, sub, ["all_pub"])
    pub.execute("CREATE TABLE later (id int PRIMARY KEY)")
    sub.execute("CREATE TABLE later (id int PRIMARY KEY)")
    pub.execute("CREATE TABLE only_pub (id int PRIMARY KEY)")
    pub.execute("ALTER PUBLICATION all_pub ADD TABLE later, only_pub")
    pub.execute("ALTER TABLE pairs ADD COLUMN note text")

    result = compare(dbs, retries=0)
    assert result["equal"] is False
    tables = by_table(result)
    assert tables["public.later"]["reason"].startswith("published but not in the subscription")
    assert tables["public.only_pub"]["reason"].startswith("missing on the subscriber")
    assert tables["public.pairs"]["reason"] == "published columns missing on the subscriber: note"
    for name in ("public.later", "public.only_pub", "public.pairs"):
        assert tables[name]["equal"] is False
        assert tables[name]["method"] is None
    assert tables["public.items"]["equal"] is True
    assert len(result["problems"]) == 3


@MIXED_PAIR
def test_a_publisher_role_with_select_only(dbs):
    """The publisher read as a role with SELECT on the tables and nothing else: it sees no replay_lsn of the
    subscription's walsender (another role's) but the slot's confirmed position, so the wait still ends."""
    pub = dbs.publisher
    subscribe(pub, dbs.subscriber, ["all_pub"])
    role, password = f"cmp_{secrets.token_hex(4)}", secrets.token_hex(12)
    pub.server.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    try:
        pub.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
        pub.execute("INSERT INTO items (id, v) VALUES (100000, 'after the copy')")
        option = publisher_option(pub, user=role, password=password)
        result = compare(dbs, publisher=option, timeout=30)
        assert result["equal"] is True, result["problems"]
        assert result["caught_up_seconds"] is not None
        assert password not in result.output
    finally:
        pub.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        pub.server.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@MIXED_PAIR
def test_a_table_written_all_the_time_compares_equal(pg_pair_db):
    """A heartbeat row updated every 20 ms differs for the milliseconds each update takes to arrive: no false
    difference from a live writer. (Whether a read hits such a moment is timing; that a differing chunk is read
    again until both sides agree is proven deterministically in tests/unit/test_replication_compare.py.)"""
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    for db in (pub, sub):
        db.execute("CREATE TABLE heartbeat (id int PRIMARY KEY, beat bigint, at timestamptz)")
    pub.execute("INSERT INTO heartbeat VALUES (1, 0, now())")
    pub.execute("CREATE PUBLICATION beat_pub FOR TABLE heartbeat")
    subscribe(pub, sub, ["beat_pub"])
    stop = threading.Event()

    def beat():
        with pub.connect() as conn:
            while not stop.is_set():
                conn.execute("UPDATE heartbeat SET beat = beat + 1, at = clock_timestamp()")
                time.sleep(0.02)

    writer = threading.Thread(target=beat)
    writer.start()
    try:
        wait_until(lambda: sub.scalar("SELECT beat FROM heartbeat") > 5, timeout=30, message="beats arrive")
        result = compare(pg_pair_db)
    finally:
        stop.set()
        writer.join()
    assert result["equal"] is True, result["problems"]
    assert pub.scalar("SELECT beat FROM heartbeat") > 5


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------


@MIXED_PAIR
def test_bad_input_fails_naming_it(dbs):
    first = subscribe(dbs.publisher, dbs.subscriber, ["all_pub"])
    failed = compare(dbs, expect_fail=True, subscription="nope")
    assert failed["msg"].startswith("subscription nope does not exist in database ")
    assert failed["msg"].endswith(f"its subscriptions: {first}")

    failed = compare(dbs, expect_fail=True, subscription=first, tables=["items", "public.nope", "other.x"])
    assert (
        failed["msg"]
        == f"tables: not published to subscription {first} (by its publications on the publisher): public.nope, other.x"
    )
    assert "tables" not in failed

    failed = compare(dbs, expect_fail=True, chunk_rows=0)
    assert failed["msg"] == "chunk_rows must be >= 1, got 0"

    # two subscriptions: one must be named
    dbs.publisher.execute("CREATE PUBLICATION loose_pub FOR TABLE loose")
    second = f"sub_{secrets.token_hex(4)}"
    dbs.subscriber.execute(
        sql.SQL(
            "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION loose_pub"
            " WITH (enabled = false, create_slot = false, slot_name = NONE)"
        ).format(sql.Identifier(second), sql.Literal(dbs.publisher.conninfo()))
    )
    failed = compare(dbs, expect_fail=True)
    assert "has 2 subscriptions" in failed["msg"]
    assert first in failed["msg"]
    assert second in failed["msg"]

    dbs.subscriber.execute(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(second)))

    # disabled: not waited for; a problem with wait_caught_up, a warning without
    dbs.subscriber.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(sql.Identifier(first)))
    waited = compare(dbs)
    assert waited["equal"] is False
    assert waited["problems"] == [f"subscription {first} is disabled: it cannot catch up"]
    assert waited["caught_up_seconds"] is None
    assert all(t["equal"] for t in waited["tables"])
    unwaited = compare(dbs, wait_caught_up=False)
    assert unwaited["equal"] is True
    assert unwaited["problems"] == []
    assert any(f"subscription {first} is disabled" in w for w in unwaited["warnings"])


@MIXED_PAIR
def test_wrong_or_unreachable_publisher(dbs):
    subscribe(dbs.publisher, dbs.subscriber, ["all_pub"])
    secret = f"pw-{secrets.token_hex(6)}"
    args = {
        **dbs.subscriber.login_args(),
        "publisher": publisher_option(dbs.publisher, password=secret, port=1, connect_timeout=2),
    }
    failed = run_module(MODULE, args, expect_fail=True)
    assert "Unable to connect to the publisher" in failed["msg"]
    assert secret not in failed.output
    assert secret not in json.dumps(dict(failed))
    # another database of the publisher's server: no publication, the slot elsewhere - found without waiting
    started = time.monotonic()
    other = compare(dbs, publisher=publisher_option(dbs.publisher, dbname="postgres"))
    assert time.monotonic() - started < 30
    assert other["equal"] is False
    assert other["caught_up_seconds"] is None
    assert "publication all_pub does not exist on the publisher" in other["problems"]
    assert any(f"is in the publisher's database {dbs.publisher.name}, not in postgres" in p for p in other["problems"])
    assert other["tables"] == []

    wrong = {**dbs.subscriber.login_args(), "publisher": publisher_option(dbs.publisher, password=secret)}
    failed = run_module(MODULE, wrong, expect_fail=True, verbosity=3)
    assert "Unable to connect to the publisher" in failed["msg"]
    assert secret not in failed.output


# ----------------------------------------------------------------------------------------------
# size
# ----------------------------------------------------------------------------------------------


@MIXED_PAIR
def test_one_million_rows_in_chunks(pg_pair_db):
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    for db in (pub, sub):
        db.execute("CREATE TABLE big (id bigint PRIMARY KEY, v text, n int)")
    pub.execute("INSERT INTO big SELECT g, md5(g::text), g % 1000 FROM generate_series(1, 1000000) g")
    pub.execute("CREATE PUBLICATION big_pub FOR TABLE big")
    started = time.monotonic()
    subscribe(pub, sub, ["big_pub"])
    synced = time.monotonic() - started

    result = compare(pg_pair_db, chunk_rows=100000)
    assert result["equal"] is True, result["problems"]
    (big,) = result["tables"]
    assert (big["publisher_rows"], big["subscriber_rows"]) == (1000000, 1000000)
    assert big["chunks"] == 11  # 10 full chunks and the empty open end
    print(
        f"\ncompare: 1,000,000 rows, chunk_rows 100000: {big['seconds']:.2f} s for the table, "
        f"{result['seconds']:.2f} s in all (initial sync took {synced:.1f} s)"
    )
