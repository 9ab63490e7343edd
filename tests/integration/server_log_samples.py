"""Produce real subscriber server logs for the unit tests of ``_server_log.py`` (run by hand).

    .venv/bin/python tests/integration/server_log_samples.py 15 17 18

For each major: a throwaway publisher and a subscriber (``pg_harness``) whose subscriber runs with
``logging_collector = on`` and ``log_destination = 'stderr,csvlog,jsonlog'`` and the default
``log_line_prefix = '%m [%p] '``. On the subscriber, in this order:

1. an apply error - a primary-key conflict (the row exists on the subscriber, the publisher
   inserts it), repeated by the worker's retries, resolved by deleting the subscriber's row;
2. a missing column - the publisher adds a column and inserts, resolved by adding the column;
3. a tablesync error - a new published table whose row already exists on the subscriber,
   resolved by deleting the subscriber's row; then that table is dropped on the subscriber and
   the publisher inserts into it (a missing relation), resolved by creating the table again and
   refreshing the subscription;
4. a publisher restart (the apply worker loses its connection);
5. then ``log_line_prefix`` is changed to pgBadger's
   ``'%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h '`` (a reload) and one more primary-key
   conflict is provoked, resolved by ``ALTER SUBSCRIPTION ... SKIP``.

The subscriber's log files (``.log``, ``.csv``, ``.json``) are copied to
``tests/unit/data/server_log/pg<major>.{log,csv,json}``. Timestamps, pids, LSNs and OIDs are
whatever the run produced: the unit tests read the files as they are.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from pg_harness import PgHarness, wait_until  # noqa: E402
from psycopg import sql  # noqa: E402

OUT = HERE.parent / "unit" / "data" / "server_log"
LOG_SETTINGS = {
    "logging_collector": True,
    "log_destination": "stderr,csvlog,jsonlog",
    "log_line_prefix": "%m [%p] ",
    "log_filename": "postgresql.log",
    "log_rotation_age": 0,
    "log_rotation_size": 0,
}


def errors(sub, name):
    row = sub.execute(
        "SELECT st.apply_error_count, st.sync_error_count FROM pg_stat_subscription_stats st"
        " JOIN pg_subscription s ON s.oid = st.subid WHERE s.subname = %s",
        [name],
        dbname="app",
    )
    return row[0] if row else (0, 0)


def replicated(sub, table, key):
    query = sql.SQL("SELECT count(*) FROM {} WHERE id = %s").format(sql.Identifier(table))
    return sub.scalar(query, [key], dbname="app") == 1


def run(harness, major):
    pub = harness.new_server(major, name=f"pub{major}")
    sub = harness.new_server(major, name=f"sub{major}", settings=LOG_SETTINGS)
    for server in (pub, sub):
        server.execute("CREATE DATABASE app")
        server.execute("CREATE TABLE books (id bigint PRIMARY KEY, sku int, title text, topic text)", dbname="app")
    pub.execute("INSERT INTO books VALUES (1, 31, 'Scaling Teams', 'leadership')", dbname="app")
    pub.execute("CREATE PUBLICATION books_pub FOR TABLE books", dbname="app")
    conninfo = pub.conninfo("app")
    sub.execute(f"CREATE SUBSCRIPTION books_sub CONNECTION '{conninfo}' PUBLICATION books_pub", dbname="app")
    wait_until(lambda: replicated(sub, "books", 1), timeout=60, message="initial copy")

    # 1. apply error: primary-key conflict
    sub.execute("INSERT INTO books VALUES (5900000, 1, 'local', 'leadership')", dbname="app")
    pub.execute("INSERT INTO books VALUES (5900000, 2, 'remote', 'leadership')", dbname="app")
    wait_until(lambda: errors(sub, "books_sub")[0] >= 2, timeout=60, message="two apply errors")
    sub.execute("DELETE FROM books WHERE id = 5900000", dbname="app")
    wait_until(
        lambda: sub.scalar("SELECT title FROM books WHERE id = 5900000", dbname="app") == "remote",
        timeout=60,
        message="conflict resolved",
    )

    # 2. missing column
    pub.execute("ALTER TABLE books ADD COLUMN note text", dbname="app")
    pub.execute("INSERT INTO books VALUES (7, 3, 'noted', 'technical', 'a note')", dbname="app")
    wait_until(lambda: errors(sub, "books_sub")[0] >= 4, timeout=60, message="missing column errors")
    sub.execute("ALTER TABLE books ADD COLUMN note text", dbname="app")
    wait_until(lambda: replicated(sub, "books", 7), timeout=60, message="column added")

    # 3. tablesync error
    for server in (pub, sub):
        server.execute("CREATE TABLE shelves (id int PRIMARY KEY, label text)", dbname="app")
    pub.execute("INSERT INTO shelves VALUES (42, 'remote')", dbname="app")
    sub.execute("INSERT INTO shelves VALUES (42, 'local')", dbname="app")
    pub.execute("ALTER PUBLICATION books_pub ADD TABLE shelves", dbname="app")
    sub.execute("ALTER SUBSCRIPTION books_sub REFRESH PUBLICATION", dbname="app")
    wait_until(lambda: errors(sub, "books_sub")[1] >= 2, timeout=60, message="two sync errors")
    sub.execute("DELETE FROM shelves WHERE id = 42", dbname="app")
    wait_until(lambda: replicated(sub, "shelves", 42), timeout=60, message="table synchronized")

    # 3b. missing relation: the subscriber's table was dropped
    sub.execute("DROP TABLE shelves", dbname="app")
    pub.execute("INSERT INTO shelves VALUES (43, 'after drop')", dbname="app")
    wait_until(lambda: errors(sub, "books_sub")[0] >= 2 + 2 + 2, timeout=60, message="missing relation errors")
    sub.execute("CREATE TABLE shelves (id int PRIMARY KEY, label text)", dbname="app")
    sub.execute("ALTER SUBSCRIPTION books_sub REFRESH PUBLICATION", dbname="app")
    wait_until(lambda: replicated(sub, "shelves", 43), timeout=60, message="table re-created")

    # 4. publisher restart
    before = errors(sub, "books_sub")[0]
    pub.restart()
    pub.execute("INSERT INTO books VALUES (8, 4, 'after restart', 'technical', NULL)", dbname="app")
    wait_until(lambda: replicated(sub, "books", 8), timeout=60, message="replication after restart")
    print(f"pg{major}: apply errors from the restart: {errors(sub, 'books_sub')[0] - before}")

    # 5. another log_line_prefix, one more conflict, skipped by LSN
    sub.execute("ALTER SYSTEM SET log_line_prefix = '%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h '")
    sub.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    sub.execute("INSERT INTO books VALUES (9, 1, 'local', 'leadership', NULL)", dbname="app")
    pub.execute("INSERT INTO books VALUES (9, 2, 'remote', 'leadership', NULL)", dbname="app")
    log_dir = sub.data_dir / "log"

    def lsns_after_reload():
        text = (log_dir / "postgresql.log").read_text()
        return re.findall(r"finished at ([0-9A-F]+/[0-9A-F]+)", text.split('"log_line_prefix" changed', 1)[-1])

    wait_until(lsns_after_reload, timeout=60, message="the second conflict's finish LSN in the log")
    lsn = lsns_after_reload()[0]
    sub.execute(f"ALTER SUBSCRIPTION books_sub SKIP (lsn = '{lsn}')", dbname="app")
    pub.execute("INSERT INTO books VALUES (10, 2, 'after skip', 'leadership', NULL)", dbname="app")
    wait_until(lambda: replicated(sub, "books", 10), timeout=60, message="replication after skip")
    time.sleep(0.5)

    OUT.mkdir(parents=True, exist_ok=True)
    for suffix in ("log", "csv", "json"):
        shutil.copyfile(log_dir / f"postgresql.{suffix}", OUT / f"pg{major}.{suffix}")
    print(f"pg{major}: {sub.version}, samples written to {OUT}")


def main(argv):
    majors = [int(a) for a in argv] or [15, 17, 18]
    harness = PgHarness(majors)
    try:
        for major in majors:
            run(harness, major)
    finally:
        harness.close()


if __name__ == "__main__":
    main(sys.argv[1:])
