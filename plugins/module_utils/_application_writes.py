# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2026, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An application that writes all the time and keeps what was acknowledged (module ``application_writes``).

The proof a switchover needs is the application's own: every INSERT the server acknowledged must be
on the new primary (and, after a switchback, on the old one). :class:`ApplicationWriter` inserts one
row at a time into the node that ``route()`` names, keeps the key of every acknowledged row, retries
on a new connection after an error (a fenced role gets read-only errors or is disconnected), and
measures the longest time between two acknowledged INSERTs - the write-unavailable time the
application saw. :func:`verify` then reads the rows of the run back from every node.
"""

from __future__ import annotations

import re
import time

try:
    import psycopg
    from psycopg import sql
    from psycopg.rows import tuple_row
except ImportError:  # reported by the module (require_psycopg)
    psycopg = sql = tuple_row = None

RUN_ID = re.compile(r"^[A-Za-z0-9_]{1,40}$")
ERROR_PAUSE_SECONDS = 0.05
MISSING_SAMPLE = 10


def note_prefix(run_id, node=None):
    """The prefix of the note of every row of a run (of one node): ``rehearsal-<run>-<node>-<n>``."""
    return f"rehearsal-{run_id}-" + (f"{node}-" if node is not None else "")


class ApplicationWriter:
    """Insert rows into whichever node ``route()`` names until ``stop()`` is true.

    ``nodes``: {name: psycopg connect keyword arguments}. ``table`` is a ``QualifiedName``; each row gets
    ``note_column`` = ``rehearsal-<run>-<node>-<n>`` and the server's ``key_column`` comes back with
    RETURNING. ``route()`` is read before every INSERT; an unknown name counts as an error.
    """

    def __init__(self, nodes, table, run_id, route, stop, note_column="note", key_column="id", pause=0.01):
        self.nodes, self.run_id, self.route, self.stop, self.pause = nodes, run_id, route, stop, pause
        self.insert = sql.SQL("INSERT INTO {} ({}) VALUES (%s) RETURNING {}").format(
            table.identifier(), sql.Identifier(note_column), sql.Identifier(key_column)
        )
        self.acknowledged = {}  # key -> node that acknowledged it
        self.errors = {}  # "node: ErrorClass" -> count
        self.longest_gap = 0.0
        self.longest_gap_ended_at = None  # seconds since the start
        self.started = None
        self._last_ack = None

    def _error(self, node, name):
        key = f"{node}: {name}"
        self.errors[key] = self.errors.get(key, 0) + 1

    def _acknowledged(self, key, node):
        now = time.monotonic()
        self.acknowledged[key] = node
        if self._last_ack is not None and now - self._last_ack > self.longest_gap:
            self.longest_gap = now - self._last_ack
            self.longest_gap_ended_at = now - self.started
        self._last_ack = now

    def run(self, max_seconds):
        self.started = time.monotonic()
        conn, conn_node, count = None, None, 0
        try:
            while not self.stop() and time.monotonic() - self.started < max_seconds:
                node = self.route()
                if node not in self.nodes:
                    self._error(str(node), "UnknownNode")
                    time.sleep(ERROR_PAUSE_SECONDS)
                    continue
                try:
                    if conn is None or conn_node != node:
                        if conn is not None:
                            conn.close()
                        conn, conn_node = None, None
                        conn = psycopg.connect(autocommit=True, **self.nodes[node])
                        conn_node = node
                    count += 1
                    key = conn.execute(self.insert, [f"{note_prefix(self.run_id, node)}{count}"]).fetchone()[0]
                    self._acknowledged(key, node)
                except psycopg.Error as exc:
                    self._error(node, type(exc).__name__)
                    if conn is not None:
                        conn.close()
                    conn, conn_node = None, None
                    time.sleep(ERROR_PAUSE_SECONDS)
                    continue
                time.sleep(self.pause)
        finally:
            if conn is not None:
                conn.close()
        return time.monotonic() - self.started

    def by_node(self):
        counts = {}
        for node in self.acknowledged.values():
            counts[node] = counts.get(node, 0) + 1
        return counts


def rows_of_run(conn, table, run_id, note_column="note", key_column="id"):
    """The keys of the rows of ``run_id`` on one node."""
    query = sql.SQL("SELECT {} FROM {} WHERE {} LIKE %s").format(
        sql.Identifier(key_column), table.identifier(), sql.Identifier(note_column)
    )
    with conn.cursor(row_factory=tuple_row) as cur:
        return {row[0] for row in cur.execute(query, [note_prefix(run_id) + "%"])}


def verify(nodes, acknowledged, read_rows, settle_timeout, poll=0.5):
    """Every acknowledged key on every node: waits up to ``settle_timeout`` s for replication to bring them.

    ``read_rows(node)`` returns the keys of the run on that node. Returns one dict per node: ``rows``
    (of the run), ``missing`` (acknowledged, not there: lost, unless it arrives later), ``missing_sample``,
    ``unacknowledged`` (there, never acknowledged: an INSERT committed as its connection was cut - the
    application would retry it) and ``settle_seconds``.
    """
    expected = set(acknowledged)
    start = time.monotonic()
    while True:
        report = []
        for node in nodes:
            present = read_rows(node)
            missing = expected - present
            report.append(
                {
                    "node": node,
                    "rows": len(present),
                    "missing": len(missing),
                    "missing_sample": sorted(missing)[:MISSING_SAMPLE],
                    "unacknowledged": len(present - expected),
                }
            )
        waited = time.monotonic() - start
        if not any(r["missing"] for r in report) or waited >= settle_timeout:
            for row in report:
                row["settle_seconds"] = round(waited, 2)
            return report
        time.sleep(poll)
