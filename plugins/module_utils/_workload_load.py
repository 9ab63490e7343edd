# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Steady (``hum``) and sinusoidal (``pulse``) INSERT/UPDATE/DELETE load on a books-shaped table.

The ``load_generator`` module's logic (:func:`execute` runs it; :func:`cleanup` for
``operation=cleanup``). The schedule is an integral: after ``t`` seconds exactly
``scheduled(t)`` operations should have run (``rate * t`` for hum, plus
``amplitude * period / 2pi * (1 - cos(2pi t / period))`` for pulse, whose instantaneous rate is
``rate + amplitude * sin(2pi t / period)``). The runner executes one operation whenever it is
behind the schedule and sleeps otherwise, so a slow server makes it fall behind (reported as
``behind``) rather than burst. Each operation is one single-statement transaction.

Rows live in a reserved id range (``id_base`` .. ``id_base + ID_SPAN - 1``, default from
1,000,000,000): the generator only ever updates or deletes rows of that range, never the seed's
five books, and :func:`cleanup_statement` removes every row it made. Inserted rows also carry
the title prefix ``"<pattern> #<id>: "`` (easy to spot on a subscriber); topics alternate
between ``leadership`` and ``technical`` so that both of the lab's row-filtered publications see
load, and 10% of the updates move a row to the other topic (a row leaving one publication's
filter and entering the other's).

Restarts: when the connection is lost (a publisher restart, ``pg_terminate_backend``, a network
cut; see :mod:`._workload_retry` for what counts), the operation in flight is counted - as
*failed* when the server reported the error (PostgreSQL aborted it), as an *unknown outcome*
when the connection broke without an answer - and the runner reconnects with capped exponential
backoff, for at most ``outage_max_seconds`` per outage. After reconnecting it reads back the
row of every unknown-outcome operation to learn whether it committed (``unknown_applied``), so its
picture of the id range stays exact. Operations the schedule wanted while disconnected are
skipped (``skipped``), not made up in a burst afterwards. Any other error still ends the run.
"""

from __future__ import annotations

import contextlib
import math
import random
import time

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing library
    sql = None

from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_markers import Markers
from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_retry import (
    Backoff,
    OutageTooLong,
    attempts,
    connect_reason,
    is_connection_loss,
    one_line,
    server_answered,
    transient_connect_error,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    PgConnectionError,
    connect,
    format_db_error,
    psycopg,
)

ID_SPAN = 1_000_000_000
DEFAULT_ID_BASE = 1_000_000_000
DEFAULT_MIX = {"insert": 50, "update": 35, "delete": 15}
TOPICS = ("leadership", "technical")
MAX_SLEEP = 0.05
DEFAULT_RECONNECT_MAX_SECONDS = 5.0
DEFAULT_OUTAGE_MAX_SECONDS = 300.0
TITLE_WORDS = ("Quiet", "Steady", "Pulsing", "Replicated", "Lagging", "Durable", "Logical", "Streaming")
TITLE_NOUNS = ("Ledger", "Slot", "Subscriber", "Publisher", "Harbor", "Archive", "Signal", "Tide")


class LoadError(ValueError):
    """Invalid load parameters."""


def validate(pattern, rate, amplitude, period, duration, mix):
    if pattern not in ("hum", "pulse"):
        raise LoadError(f"pattern: {pattern!r} is not hum or pulse")
    if rate is None or rate <= 0:
        raise LoadError("rate: must be greater than 0 operations per second")
    if duration is None or duration <= 0:
        raise LoadError("duration: must be greater than 0 seconds")
    if pattern == "pulse":
        if amplitude is None or amplitude < 0 or amplitude > rate:
            raise LoadError(f"amplitude: must be between 0 and rate ({rate:g}) so the rate never goes negative")
        if period is None or period <= 0:
            raise LoadError("period: must be greater than 0 seconds")
    if not mix or any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise LoadError("mix: weights must be >= 0 and not all 0")
    unknown = set(mix) - set(DEFAULT_MIX)
    if unknown:
        raise LoadError(f"mix: unknown operation(s) {', '.join(sorted(unknown))} (insert, update, delete)")


def rate_at(t, pattern, rate, amplitude=0.0, period=60.0):
    """Instantaneous target rate (operations per second) at ``t`` seconds."""
    if pattern == "pulse":
        return rate + amplitude * math.sin(2 * math.pi * t / period)
    return rate


def scheduled(t, pattern, rate, amplitude=0.0, period=60.0):
    """Operations that should have run after ``t`` seconds (the integral of :func:`rate_at`)."""
    total = rate * t
    if pattern == "pulse":
        total += amplitude * period / (2 * math.pi) * (1 - math.cos(2 * math.pi * t / period))
    return total


def windows(duration, interval):
    """``[(start, end), ...]`` report windows covering ``duration`` seconds."""
    out = []
    start = 0.0
    while start < duration - 1e-9:
        end = min(start + interval, duration)
        out.append((start, end))
        start = end
    return out


class Statements:
    """The four statements of the generator for ``schema.table`` (columns id, sku, title, topic)."""

    def __init__(self, schema, table):
        target = sql.Identifier(schema, table)
        self.insert = sql.SQL("INSERT INTO {} (id, sku, title, topic) VALUES (%s, %s, %s, %s)").format(target)
        self.update = sql.SQL("UPDATE {} SET sku = %s, title = %s, topic = %s WHERE id = %s").format(target)
        self.delete = sql.SQL("DELETE FROM {} WHERE id = %s").format(target)
        self.existing = sql.SQL("SELECT id, topic FROM {} WHERE id BETWEEN %s AND %s ORDER BY id").format(target)
        self.row = sql.SQL("SELECT sku, title, topic FROM {} WHERE id = %s").format(target)


def cleanup_statement(schema, table):
    return sql.SQL("DELETE FROM {} WHERE id BETWEEN %s AND %s").format(sql.Identifier(schema, table))


class Operation:
    """One planned operation: ``kind`` (insert, update, delete), ``key`` (the id) and ``values``
    (``(sku, title, topic)`` for insert and update, ``None`` for delete)."""

    __slots__ = ("key", "kind", "values")

    def __init__(self, kind, key, values=None):
        self.kind, self.key, self.values = kind, key, values

    def describe(self):
        return f"{self.kind} of id {self.key}"


class LoadRunner:
    """Runs the schedule on an autocommit psycopg connection and collects the report.

    ``connect`` (a callable returning a new connection) enables reconnecting after a connection
    loss, waiting per :class:`Backoff` (``reconnect_max_seconds``, ``outage_max_seconds``; ``0``
    never reconnects). Without ``connect`` the first connection loss ends the run, as any error does.
    """

    def __init__(
        self,
        conn,
        schema="public",
        table="books",
        pattern="hum",
        rate=10.0,
        amplitude=0.0,
        period=60.0,
        duration=10.0,
        mix=None,
        id_base=DEFAULT_ID_BASE,
        report_interval=5.0,
        seed=None,
        clock=time.monotonic,
        sleep=time.sleep,
        connect=None,
        reconnect_max_seconds=DEFAULT_RECONNECT_MAX_SECONDS,
        outage_max_seconds=DEFAULT_OUTAGE_MAX_SECONDS,
    ):
        self.conn = conn
        self.pattern = pattern
        self.rate = float(rate)
        self.amplitude = float(amplitude or 0.0)
        self.period = float(period or 60.0)
        self.duration = float(duration)
        self.mix = dict(mix or DEFAULT_MIX)
        self.id_base = int(id_base)
        self.id_last = self.id_base + ID_SPAN - 1
        self.report_interval = float(report_interval)
        self.random = random.Random(seed)  # noqa: S311 - load shape, not secrets
        self.clock = clock
        self.sleep = sleep
        self.statements = Statements(schema, table)
        self.live = {}
        self.next_id = self.id_base
        self.counts = {"insert": 0, "update": 0, "delete": 0}
        self.connect = connect
        self.backoff = Backoff(reconnect_max_seconds, outage_max_seconds if connect else 0)
        self.failed = 0
        self.unknown = 0
        self.unknown_applied = 0
        self.pending = []  # (operation, server answered) interrupted and not checked yet
        self.reconnects = 0
        self.disconnected = 0.0
        self.skipped = 0
        self.log = []
        self._start = None
        self._outage_start = None

    def load_existing(self):
        """Pick up rows of the reserved range left by earlier runs (they can be updated and deleted)."""
        with self.conn.cursor() as cur:
            cur.execute(self.statements.existing, [self.id_base, self.id_last])
            for row in cur.fetchall():
                key, topic = (row["id"], row["topic"]) if isinstance(row, dict) else row
                self.live[key] = topic
        if self.live:
            self.next_id = max(self.live) + 1
        return len(self.live)

    def _title(self, serial):
        return f"{self.pattern} #{serial}: {self.random.choice(TITLE_WORDS)} {self.random.choice(TITLE_NOUNS)}"

    def choose(self):
        kinds = list(self.mix)
        kind = self.random.choices(kinds, weights=[self.mix[k] for k in kinds])[0]
        if kind != "insert" and not self.live:
            kind = "insert"
        return kind

    def plan(self):
        """The next operation (random choices made, nothing executed, ``live`` unchanged)."""
        kind = self.choose()
        if kind == "insert":
            if self.next_id > self.id_last:
                raise LoadError(f"the reserved id range {self.id_base}..{self.id_last} is exhausted; clean it up")
            key = self.next_id
            self.next_id += 1
            sku = self.random.randint(1, 999)
            return Operation(kind, key, (sku, self._title(key), TOPICS[key % 2]))
        key = self.random.choice(list(self.live)) if len(self.live) < 4096 else self._sample_live()
        if kind == "update":
            topic = self.live[key]
            if self.random.random() < 0.1:
                topic = TOPICS[1 - TOPICS.index(topic)] if topic in TOPICS else TOPICS[0]
            sku = self.random.randint(1, 999)
            return Operation(kind, key, (sku, self._title(key), topic))
        return Operation(kind, key)

    def execute(self, op):
        sku_title_topic = op.values
        if op.kind == "insert":
            self.conn.execute(self.statements.insert, [op.key, *sku_title_topic])
        elif op.kind == "update":
            self.conn.execute(self.statements.update, [*sku_title_topic, op.key])
        else:
            self.conn.execute(self.statements.delete, [op.key])

    def took_effect(self, op):
        """Record ``op`` as committed in the picture of the id range."""
        if op.kind == "delete":
            self.live.pop(op.key, None)
        else:
            self.live[op.key] = op.values[2]

    def committed(self, op):
        """After reconnecting: whether an unknown-outcome ``op`` committed (reads its row back)."""
        row = self.conn.execute(self.statements.row, [op.key]).fetchone()
        if row is not None and not isinstance(row, dict):
            row = dict(zip(("sku", "title", "topic"), row))  # noqa: B905 - Python 3.8 targets
        if op.kind == "insert":
            return row is not None
        if op.kind == "delete":
            return row is None
        return row is not None and (row["sku"], row["title"], row["topic"]) == tuple(op.values)

    def one(self):
        op = self.plan()
        self.execute(op)
        self.took_effect(op)
        self.counts[op.kind] += 1
        return op.kind

    def _sample_live(self):
        # Random access into a big dict without copying it every time: probe random ids.
        low, high = min(self.live), self.next_id - 1
        for _attempt in range(64):
            key = self.random.randint(low, high)
            if key in self.live:
                return key
        return next(iter(self.live))

    # -- connection loss ------------------------------------------------------------------------

    def _note(self, text):
        elapsed = self.clock() - self._start if self._start is not None else 0.0
        self.log.append(f"{elapsed:.1f} s: {text}")

    def _drop_connection(self):
        with contextlib.suppress(Exception):  # a dead connection may fail to close in many ways
            self.conn.close()
        self.conn = None
        self._outage_start = self.clock()

    def lost(self, op, exc):
        """Count ``op`` (interrupted by a connection loss ``exc``) and drop the connection.

        Every interrupted operation is read back after reconnecting: an unknown outcome to learn
        it, a server-reported failure to confirm it (should PostgreSQL have committed before
        reporting the error, the operation moves to the unknown outcomes, found committed).
        """
        answered = server_answered(exc)
        reason = format_db_error(exc) if answered else one_line(exc)
        if answered:
            self.failed += 1
            fate = "not applied (the server aborted it)"
        else:
            self.unknown += 1
            fate = "outcome unknown (no answer; checked after reconnecting)"
        self.pending.append((op, answered))
        self._note(f"connection lost: {reason}; the {op.describe()}: {fate}")
        self._drop_connection()

    def _resolve_pending(self):
        """Read back the rows of interrupted operations; a new connection loss drops the connection."""
        while self.pending:
            op, answered = self.pending[0]
            try:
                applied = self.committed(op)
            except psycopg.Error as exc:
                if not is_connection_loss(exc, self.conn):
                    raise
                self._note(f"connection lost again while checking the {op.describe()}: {one_line(exc)}")
                self._drop_connection()
                return
            self.pending.pop(0)
            if applied:
                if answered:  # the server reported an error, yet the change is there
                    self.failed -= 1
                    self.unknown += 1
                self.unknown_applied += 1
                self.took_effect(op)
            if not answered or applied:
                self._note(f"the {op.describe()} had {'committed' if applied else 'not committed'}")

    def reconnect(self):
        """Reconnect with backoff; ``False`` when the run's duration ended while disconnected.

        Raises :class:`OutageTooLong` past ``outage_max_seconds`` and :class:`LoadError` when a
        connection attempt fails for a reason that is not transient (e.g. a wrong password).
        """
        attempt = 0
        while True:
            now = self.clock()
            run_left = self.duration - (now - self._start)
            outage = now - self._outage_start
            if run_left <= 0:
                self.disconnected += outage
                self._note(f"the run ended while disconnected ({outage:.1f} s)")
                return False
            attempt += 1
            wait = self.backoff.next_wait(attempt, outage)
            if wait is None:
                self.disconnected += outage
                raise OutageTooLong(
                    f"the connection did not come back within outage_max_seconds ({self.backoff.give_up_after:g} s,"
                    f" {attempt - 1} attempts)"
                )
            self.sleep(min(wait, run_left))
            if self.clock() - self._start >= self.duration:
                continue
            try:
                conn = self.connect()
            except (psycopg.Error, PgConnectionError, OSError) as exc:
                if not transient_connect_error(exc):
                    self.disconnected += self.clock() - self._outage_start
                    raise LoadError(f"reconnecting failed: {one_line(exc)}") from None
                self._note(f"reconnect attempt {attempt} failed: {connect_reason(exc)}")
                continue
            self.conn = conn
            outage = self.clock() - self._outage_start
            self.disconnected += outage
            self.reconnects += 1
            self._note(f"reconnected after {outage:.1f} s ({attempts(attempt)})")
            self._resolve_pending()
            return True

    # -- the run --------------------------------------------------------------------------------

    def run(self):
        """Run for ``duration`` seconds; return the report dict."""
        spans = windows(self.duration, self.report_interval)
        per_window = [0] * len(spans)
        start = self._start = self.clock()
        done = 0
        slots = 0  # schedule slots used: operations tried (acknowledged or not) and skipped ones
        elapsed = 0.0
        while True:
            elapsed = self.clock() - start
            if elapsed >= self.duration:
                break
            if self.conn is None:
                if not self.reconnect():
                    break
                if self.conn is not None:  # what the schedule wanted while disconnected is skipped
                    gap = math.floor(
                        scheduled(self.clock() - start, self.pattern, self.rate, self.amplitude, self.period)
                    )
                    if gap > slots:
                        self.skipped += gap - slots
                        slots = gap
                continue
            target = scheduled(elapsed, self.pattern, self.rate, self.amplitude, self.period)
            if slots < target:  # behind the schedule: run the next operation now
                op = self.plan()
                slots += 1
                try:
                    self.execute(op)
                except psycopg.Error as exc:
                    if not self.backoff.enabled or not is_connection_loss(exc, self.conn):
                        raise
                    self.lost(op, exc)
                    continue
                self.took_effect(op)
                self.counts[op.kind] += 1
                done += 1
                per_window[min(int(elapsed // self.report_interval), len(per_window) - 1)] += 1
                continue
            current = max(rate_at(elapsed, self.pattern, self.rate, self.amplitude, self.period), 0.1)
            self.sleep(min(MAX_SLEEP, (slots - target) / current + 0.0005, self.duration - elapsed))
        seconds = self.clock() - start
        should = scheduled(min(seconds, self.duration), self.pattern, self.rate, self.amplitude, self.period)
        report_windows = []
        for (w_start, w_end), ops in zip(spans, per_window):  # noqa: B905 - Python 3.8 targets
            length = w_end - w_start
            target_ops = scheduled(w_end, self.pattern, self.rate, self.amplitude, self.period) - scheduled(
                w_start, self.pattern, self.rate, self.amplitude, self.period
            )
            report_windows.append(
                {
                    "start_s": round(w_start, 3),
                    "end_s": round(w_end, 3),
                    "operations": ops,
                    "target_rate": round(target_ops / length, 2) if length else None,
                    "achieved_rate": round(ops / length, 2) if length else None,
                }
            )
        return {
            "pattern": self.pattern,
            "operations": done,
            "inserts": self.counts["insert"],
            "updates": self.counts["update"],
            "deletes": self.counts["delete"],
            "seconds": round(seconds, 3),
            "rate": round(done / seconds, 2) if seconds > 0 else None,
            "target_rate": round(should / self.duration, 2) if self.duration else None,
            "behind": max(0, math.floor(should) - slots),
            "windows": report_windows,
            "rows_in_range": len(self.live),
            "id_range": [self.id_base, self.id_last],
            **self.outage_report(),
        }

    def outage_report(self):
        """The connection-loss counters (also part of a failure's result)."""
        return {
            "failed_operations": self.failed,
            "unknown_outcomes": self.unknown,
            "unknown_applied": self.unknown_applied,
            "unknown_unresolved": sum(1 for _op, answered in self.pending if not answered),
            "reconnects": self.reconnects,
            "seconds_disconnected": round(self.disconnected, 3),
            "skipped": self.skipped,
            "reconnect_log": list(self.log),
        }


# --------------------------------------------------------------------------- the module's steps
def cleanup(m):
    p = m.params
    first, last = p["id_base"], p["id_base"] + ID_SPAN - 1
    start = time.monotonic()
    target = sql.Identifier(p["schema"], p["table"])
    count = sql.SQL("SELECT count(*) AS n FROM {} WHERE id BETWEEN %s AND %s").format(target)
    rows = m.query_one(count, [first, last])["n"]
    if rows:
        m.execute(cleanup_statement(p["schema"], p["table"]), [first, last])
    m.exit(
        changed=rows > 0,
        rows=rows,
        seconds=round(time.monotonic() - start, 3),
        rows_in_range=0,
        id_range=[first, last],
        markers=[],
    )


# The module options LoadRunner takes as they are (mix is converted to floats first).
RUNNER_OPTIONS = (
    "schema",
    "table",
    "pattern",
    "rate",
    "amplitude",
    "period",
    "duration",
    "id_base",
    "report_interval",
    "seed",
    "reconnect_max_seconds",
    "outage_max_seconds",
)


def execute(m):
    """The ``load_generator`` module's steps after argument parsing (``m``: its PgModule)."""
    p = m.params
    if p["id_base"] < 6:
        m.fail("id_base: must be above the seed's book ids (1 to 5)")
    conn = m.connect()
    if p["operation"] == "cleanup":
        cleanup(m)
    try:
        mix = {key: float(value) for key, value in (p["mix"] or {}).items()}
        validate(p["pattern"], p["rate"], p["amplitude"], p["period"], p["duration"], mix)
    except (TypeError, ValueError) as exc:
        m.fail(str(exc))
    if p["report_interval"] <= 0:
        m.fail("report_interval: must be greater than 0 seconds")
    try:
        runner = LoadRunner(conn, mix=mix, connect=lambda: connect(p), **{name: p[name] for name in RUNNER_OPTIONS})
    except ValueError as exc:
        m.fail(str(exc))
    try:
        existing = runner.load_existing()
    except psycopg.Error as exc:
        m.fail(format_db_error(exc, (), f"reading {p['schema']}.{p['table']} failed"), sqlstate=exc.sqlstate)
    predicted = round(scheduled(p["duration"], p["pattern"], p["rate"], p["amplitude"], p["period"]))
    m.queries.extend(
        m.render(s) for s in (runner.statements.insert, runner.statements.update, runner.statements.delete)
    )
    if m.check_mode:
        m.exit(
            changed=predicted > 0,
            pattern=p["pattern"],
            operations=predicted,
            rows=predicted,
            inserts=0,
            updates=0,
            deletes=0,
            seconds=0.0,
            rate=None,
            target_rate=round(predicted / p["duration"], 2),
            behind=0,
            windows=[],
            rows_in_range=existing,
            id_range=[runner.id_base, runner.id_last],
            markers=[],
            **runner.outage_report(),
        )
    markers = Markers(m, p.get("influx_endpoints"), node=p["influx_node"], workload=p["pattern"])
    markers.start(
        target_rate=p["rate"],
        amplitude=p["amplitude"] if p["pattern"] == "pulse" else None,
        period=p["period"] if p["pattern"] == "pulse" else None,
        duration=p["duration"],
    )
    try:
        report = runner.run()
    except (psycopg.Error, LoadError, OutageTooLong) as exc:
        m.conn = runner.conn  # the live session, if any, for the module's own clean-up
        done = dict(runner.counts)
        outage = runner.outage_report()
        markers.stop(
            rows=sum(done.values()),
            failed=True,
            failed_operations=outage["failed_operations"],
            reconnects=outage["reconnects"],
        )
        message = format_db_error(exc, (), "load failed") if isinstance(exc, psycopg.Error) else str(exc)
        m.fail(
            f"{message} (after {done['insert']} inserts, {done['update']} updates, {done['delete']} deletes,"
            f" {outage['failed_operations']} failed and {outage['unknown_outcomes']} unknown-outcome operations,"
            f" {outage['reconnects']} reconnects)",
            markers=markers.written,
            operations=sum(done.values()),
            **outage,
        )
    m.conn = runner.conn  # after a reconnect the module's first session is gone
    markers.stop(
        rows=report["operations"],
        seconds=report["seconds"],
        rate=report["rate"],
        target_rate=report["target_rate"],
        behind=report["behind"],
        failed_operations=report["failed_operations"],
        unknown_outcomes=report["unknown_outcomes"],
        reconnects=report["reconnects"],
        seconds_disconnected=report["seconds_disconnected"],
    )
    report["rows"] = report["operations"]
    m.exit(changed=report["operations"] > 0, markers=markers.written, **report)
