# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The experiments' workload steps and the probe that samples while they run.

``STEPS`` is the table the spec validation uses: step kind -> ``{"doc", "params": {name: {"type",
"default", "doc"}}, "writes"}``. Every step also accepts :data:`COMMON_PARAMS` (``id``,
``background``). Types are ``int``, ``float`` (an int is accepted), ``str``, ``bool``, ``dict``;
a default of ``None`` means "optional, no value".

Tables (schema ``experiment``, created by the lab's publisher schema file and published by
``experiment_pub`` / ``experiment_filter_1..4``; the same definitions on every node): ``marker``,
``heartbeat``, ``rows``, ``rows_full`` (REPLICA IDENTITY FULL, no key), ``filtered`` (the row filter
experiments' table), ``books`` (the load generator's shape). ``sync_1..4`` exist on the publisher only
(publication ``experiment_sync_pub``); ``initial_sync`` creates them on the nodes.
"""

from __future__ import annotations

import datetime
import os
import re
import statistics
import subprocess
import threading
import time

from ansible_collections.inventium.logical_replication.plugins.module_utils import _experiment_catalog as catalog
from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_load import LoadRunner
from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_pgbench import (
    PgbenchError,
    environment,
    find_pgbench,
    init_argv,
    parse_report,
    run_argv,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    connect,
    connection_kwargs,
    psycopg,
    sql,
)

try:
    import docker
except ImportError:  # pragma: no cover - Docker measures are then reported as missing
    docker = None

COMMON_PARAMS = {
    "id": {"type": "str", "default": None, "doc": "Name for variant overrides (variants[].workload.<id>)."},
    "background": {
        "type": "bool",
        "default": False,
        "doc": "Run in a thread while the next steps run; joined by wait_caught_up and at the workload's end.",
    },
}

_TABLE_DOC = "Table in schema experiment the step writes (rows, rows_full or filtered)."

STEPS = {
    "large_transaction": {
        "doc": "INSERT rows into an experiment table in ONE transaction (plus the marker row).",
        "writes": True,
        "params": {
            "rows": {"type": "int", "default": 500000, "doc": "Rows inserted by the transaction."},
            "payload_bytes": {"type": "int", "default": 100, "doc": "Length of each row's text payload."},
            "table": {"type": "str", "default": "rows", "doc": _TABLE_DOC},
        },
    },
    "burst": {
        "doc": "INSERT rows as fast as possible in transactions of `batch` rows (the last one with the marker row).",
        "writes": True,
        "params": {
            "rows": {"type": "int", "default": 100000, "doc": "Rows inserted in total."},
            "batch": {"type": "int", "default": 1000, "doc": "Rows per transaction."},
            "payload_bytes": {"type": "int", "default": 100, "doc": "Length of each row's text payload."},
            "table": {"type": "str", "default": "rows", "doc": _TABLE_DOC},
        },
    },
    "pgbench": {
        "doc": "pgbench on the publisher's pgbench tables (bench_pub), optionally at a fixed rate (-R).",
        "writes": True,
        "params": {
            "duration": {"type": "int", "default": 30, "doc": "Seconds (-T)."},
            "rate": {"type": "float", "default": None, "doc": "Transactions per second (-R); none: full speed."},
            "clients": {"type": "int", "default": 2, "doc": "Client connections (-c)."},
            "jobs": {"type": "int", "default": 1, "doc": "Threads (-j)."},
            "builtin": {"type": "str", "default": "tpcb-like", "doc": "Built-in script (tpcb-like, simple-update)."},
            "init_scale": {
                "type": "int",
                "default": 1,
                "doc": "pgbench -i -I gv at this scale when the tables hold another scale (then waits until "
                "replicated; not in publisher_tps); 0: never initialise.",
            },
        },
    },
    "hum": {
        "doc": "Steady INSERT/UPDATE/DELETE load (the load generator's hum) on experiment.books.",
        "writes": True,
        "params": {
            "rate": {"type": "float", "default": 200.0, "doc": "Operations (transactions) per second."},
            "duration": {"type": "float", "default": 30.0, "doc": "Seconds."},
            "mix": {"type": "dict", "default": None, "doc": "Weights {insert, update, delete}; default 50/35/15."},
        },
    },
    "pause": {
        "doc": "Disable each node's subscription for `seconds`, then enable it again (run a background writer "
        "before it); measures retained WAL at resume, catch-up and its rate.",
        "writes": False,
        "params": {
            "seconds": {"type": "float", "default": 10.0, "doc": "Seconds the subscription stays disabled."},
        },
    },
    "backlog": {
        "doc": "Disable each node's subscription, INSERT `rows` rows, enable it and time the drain "
        "(apply_rows_per_second).",
        "writes": True,
        "params": {
            "rows": {"type": "int", "default": 100000, "doc": "Rows written while the subscriptions are disabled."},
            "batch": {"type": "int", "default": 1, "doc": "Rows per transaction (1: one commit per row)."},
            "payload_bytes": {"type": "int", "default": 100, "doc": "Length of each row's text payload."},
            "table": {"type": "str", "default": "rows", "doc": _TABLE_DOC},
            "timeout": {"type": "float", "default": 600.0, "doc": "Seconds to wait for the drain."},
        },
    },
    "initial_sync": {
        "doc": "Fill the publisher's experiment.sync_1..4 (publication experiment_sync_pub) with `rows` rows in total "
        "(kept between runs), create on each node in turn the step's own subscription exp_sync_<node> (connection "
        "and binary/streaming options copied from the node's lab subscription, plus `options`) and time it until "
        "every table is ready; with baseline copy also COPY | COPY the same tables; drop the subscription and "
        "truncate the node's tables afterwards.",
        "writes": False,
        "params": {
            "rows": {"type": "int", "default": 1000000, "doc": "Rows in the four tables together."},
            "payload_bytes": {"type": "int", "default": 100, "doc": "Length of each row's text payload."},
            "options": {
                "type": "dict",
                "default": None,
                "doc": "Extra CREATE SUBSCRIPTION options (binary, streaming, ...) overriding the copied ones.",
            },
            "timeout": {"type": "float", "default": 900.0, "doc": "Seconds to wait for all tables ready."},
        },
    },
    "update_delete": {
        "doc": "Fill a table with `rows` rows (not measured, waited until replicated), then UPDATE every row and "
        "DELETE every row in transactions of `batch` rows; measures apply_rows_per_second on each node.",
        "writes": True,
        "params": {
            "rows": {"type": "int", "default": 20000, "doc": "Rows filled, then updated, then deleted."},
            "batch": {"type": "int", "default": 1000, "doc": "Rows per UPDATE/DELETE transaction."},
            "table": {"type": "str", "default": "rows_full", "doc": _TABLE_DOC},
            "timeout": {"type": "float", "default": 900.0, "doc": "Seconds to wait for the nodes to apply."},
        },
    },
    "slot_limit": {
        "doc": "Disable each node's subscription and INSERT in batches (CHECKPOINT after each) until the node's "
        "slot is lost (max_slot_wal_keep_size comes from the variant's publisher_settings); records the wal_status "
        "transitions as events and the subscriber's error after re-enabling. Recovery (re-creating the "
        "subscription) is the runner's job: the result's `recovery` lists the nodes that need it.",
        "writes": True,
        "params": {
            "batch": {"type": "int", "default": 20000, "doc": "Rows per transaction of the burst."},
            "payload_bytes": {"type": "int", "default": 500, "doc": "Length of each row's text payload."},
            "max_rows": {"type": "int", "default": 2000000, "doc": "Stop (slot survived) after this many rows."},
            "table": {"type": "str", "default": "rows", "doc": _TABLE_DOC},
            "error_wait": {
                "type": "float",
                "default": 15.0,
                "doc": "Seconds to wait for the subscriber's error after re-enabling.",
            },
        },
    },
    "wait_caught_up": {
        "doc": "Join the background steps, then wait until every node has replayed the publisher's WAL up to now "
        "(records catchup_seconds from the last write's end).",
        "writes": False,
        "params": {
            "timeout": {"type": "float", "default": 600.0, "doc": "Seconds before the run fails."},
        },
    },
    "sleep": {
        "doc": "Sleep (e.g. to watch lag decay on the plots).",
        "writes": False,
        "params": {
            "seconds": {"type": "float", "default": 5.0, "doc": "Seconds."},
        },
    },
}
"""Step kind -> documentation, whether it writes, and its parameters (type, default, one-line doc)."""

STEP_KINDS = tuple(STEPS)
TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "dict": (dict,)}

RESET_TABLES = ("marker", "heartbeat", "rows", "rows_full", "filtered", "books")
"""The lab's experiment tables (schema experiment, publication experiment_pub) truncated before each run."""
SCHEMA = "experiment"
SYNC_PUBLICATION = "experiment_sync_pub"
SYNC_TABLES = ("sync_1", "sync_2", "sync_3", "sync_4")
SYNC_SUBSCRIPTION_PREFIX = "exp_sync_"
LOCAL_HOSTS = ("", "127.0.0.1", "localhost", "::1")
PGBENCH_ROWS_PER_TRANSACTION = {"tpcb-like": 4, "simple-update": 2, "select-only": 0}
POLL = 0.1


class ExperimentError(Exception):
    """A step or a measure cannot proceed; ``str()`` is the message for the user."""


def _now():
    return time.time()


def iso(unix):
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc)  # noqa: UP017 - Python < 3.11.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ident(name):
    """A node name as part of an identifier (experiment_sync_<node>)."""
    return re.sub(r"[^a-z0-9_]", "_", str(name).lower())


def _table(name):
    return sql.Identifier(SCHEMA, name)


def resolve_params(step):
    """A step dict (``{"step": kind, ...}``) with every parameter of its kind filled with its default."""
    kind = step.get("step")
    if kind not in STEPS:
        raise ExperimentError(f"unknown step {kind!r}; known: {', '.join(STEP_KINDS)}")
    spec = {**COMMON_PARAMS, **STEPS[kind]["params"]}
    unknown = set(step) - set(spec) - {"step"}
    if unknown:
        raise ExperimentError(f"step {kind}: unknown parameter(s) {', '.join(sorted(unknown))}")
    params = {name: step.get(name, meta["default"]) for name, meta in spec.items()}
    params["step"] = kind
    return params


def _payload_sql(payload_bytes):
    # md5 text keeps the payload incompressible-ish and cheap to build on the server.
    return sql.SQL("left(repeat(md5(g::text), {}), {})").format(
        sql.Literal(int(payload_bytes) // 32 + 1), sql.Literal(int(payload_bytes))
    )


def insert_series_sql(table, payload_bytes):
    """INSERT of ids %s..%s into an experiment table (id, k, grp, payload); k = id (an index on k is selective)."""
    return sql.SQL(
        "INSERT INTO {} (id, k, grp, payload) SELECT g, g, g %% 4, {} FROM generate_series(%s::bigint, %s::bigint) g"
    ).format(_table(table), _payload_sql(payload_bytes))


def proc_cpu_seconds(pid):
    """utime + stime of a local process in seconds (/proc/<pid>/stat), None when it is gone."""
    try:
        with open(f"/proc/{int(pid)}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def container_sample(container):
    """(cpu_stats.cpu_usage.total_usage in ns, memory_stats.usage in bytes) of a Docker container, now.

    ``one_shot`` makes the engine answer at once (no second sample for precpu_stats, which we do not use)."""
    stats = container.stats(stream=False, one_shot=True)
    usage = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    memory = (stats.get("memory_stats") or {}).get("usage")
    return usage, memory


class Node:
    """A subscriber node of the run: connection options, its lab subscription and slot, container."""

    def __init__(self, spec):
        self.name = spec["name"]
        self.login = {k: spec.get(k) for k in ("login_host", "login_port", "login_user", "login_password", "login_db")}
        self.subscription = spec["subscription"]
        self.slot_name = spec.get("slot_name") or spec["subscription"]
        self.container = spec.get("container") or ""
        self.major = spec.get("major")
        self.extra_subscriptions = []
        self.lost = False

    def connect(self):
        return connect(self.login)

    def app_names(self):
        return [self.subscription, *self.extra_subscriptions]


class Context:
    """State shared by the steps, the probe and the marker pollers during one run."""

    def __init__(self, publisher, nodes, measures=(), baseline=None, run=None):
        self.publisher = publisher
        self.nodes = [Node(n) for n in nodes]
        self.measures = list(measures)
        self.baseline = baseline
        self.run = run or {}
        self.lock = threading.Lock()
        self.notes = []
        self.events = []
        self.background = []
        self.next_ids = {}
        self.marker_id = 0
        self.pending_marker = None  # (id, monotonic commit time)
        self.visible = {}  # marker id -> {node: seconds}
        self.writes = {"rows": 0, "transactions": 0, "seconds": 0.0}
        self.pgbench_tps = []
        self.last_write = None  # {"t": monotonic, "lsn": text, "serial": n}
        self.write_serial = 0
        self.live = {}  # running step -> callable returning its rows so far
        self.catchup = {}
        self.catchup_serial = None
        self.step_measures = {}
        self.wal_status = {}
        self.recovery = {}
        self.conn = connect(publisher)
        self.pub_major = self.conn.info.server_version // 10000
        self.pub_local = (publisher.get("login_host") or "") in LOCAL_HOSTS
        self.label = "/".join(str(self.run.get(k, "")) for k in ("experiment", "variant", "repetition"))

    # --- bookkeeping --------------------------------------------------------------------------------

    def note(self, text):
        with self.lock:
            if text not in self.notes:
                self.notes.append(text)

    def event(self, node, what, ts=None):
        with self.lock:
            self.events.append({"ts": round(ts or _now(), 3), "node": node, "what": what})

    def take_ids(self, table, count):
        with self.lock:
            first = self.next_ids.get(table, 1)
            self.next_ids[table] = first + count
        return first

    def next_marker(self):
        with self.lock:
            self.marker_id += 1
            return self.marker_id

    def marker_committed(self, marker_id, t_commit):
        with self.lock:
            self.pending_marker = (marker_id, t_commit)
            self.visible.setdefault(marker_id, {})

    def set_measure(self, name, node, value):
        with self.lock:
            if node is None:
                self.step_measures[name] = value
            else:
                self.step_measures.setdefault(name, {})[node] = value

    def record_write(self, conn, rows, transactions, seconds, live_key=None):
        lsn = conn.execute(catalog.CURRENT_LSN).fetchone()["lsn"]
        with self.lock:
            self.live.pop(live_key, None)
            self.writes["rows"] += rows
            self.writes["transactions"] += transactions
            self.writes["seconds"] += seconds
            self.write_serial += 1
            self.last_write = {"t": time.monotonic(), "lsn": lsn, "serial": self.write_serial}

    def rows_now(self):
        """Rows written so far, including those of steps still running (pause counts its background writer)."""
        with self.lock:
            return self.writes["rows"] + sum(count() for count in self.live.values())

    def observe_wal_status(self, node, status, ts=None):
        with self.lock:
            before = self.wal_status.get(node.name)
            self.wal_status[node.name] = status
        if before is not None and before != status:
            self.event(node.name, f"wal_status {before} -> {status}", ts)

    def live_nodes(self):
        return [n for n in self.nodes if not n.lost]

    # --- publisher helpers --------------------------------------------------------------------------

    def current_lsn(self, conn=None):
        return (conn or self.conn).execute(catalog.CURRENT_LSN).fetchone()["lsn"]

    def wait_caught_up(self, lsn, since=None, timeout=600.0, conn=None, app_names=None, nodes=None):
        """Poll until each node's walsender(s) replayed ``lsn``; return {node: monotonic time seen}."""
        own = conn is None
        conn = conn or connect(self.publisher)
        seen = {}
        deadline = time.monotonic() + timeout
        try:
            pending = list(nodes if nodes is not None else self.live_nodes())
            while pending:
                for node in list(pending):
                    names = app_names(node) if app_names else node.app_names()
                    row = conn.execute(catalog.CAUGHT_UP, [lsn, names]).fetchone()
                    if row["senders"] and row["done"] == row["senders"]:
                        seen[node.name] = time.monotonic()
                        pending.remove(node)
                if pending:
                    if time.monotonic() > deadline:
                        raise ExperimentError(
                            f"{', '.join(n.name for n in pending)} did not replay the publisher's WAL up to {lsn} "
                            f"within {timeout:g} s"
                        )
                    time.sleep(POLL)
        finally:
            if own:
                conn.close()
        return seen

    def set_enabled(self, nodes, enabled):
        verb = sql.SQL("ENABLE" if enabled else "DISABLE")
        for node in nodes:
            with node.connect() as conn:
                conn.execute(sql.SQL("ALTER SUBSCRIPTION {} {}").format(sql.Identifier(node.subscription), verb))
            self.event(node.name, f"subscription {node.subscription} {'enabled' if enabled else 'disabled'}")

    def wait_slot_inactive(self, nodes, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.conn.execute(catalog.SLOT_RETAINED, [[n.slot_name for n in nodes]]).fetchall()
            if not any(r["active"] for r in rows):
                return
            time.sleep(POLL)
        self.note(f"the slots of {', '.join(n.name for n in nodes)} were still active {timeout:g} s after DISABLE")

    def retained(self, node):
        row = self.conn.execute(catalog.SLOT_RETAINED, [[node.slot_name]]).fetchone()
        return row["retained_bytes"] if row else None


# --- reset ----------------------------------------------------------------------------------------------


def reset(ctx, timeout=300.0):
    """TRUNCATE the experiment tables on the publisher (replicated) and wait until every node sees them empty."""
    present = [
        t
        for t in RESET_TABLES
        if ctx.conn.execute("SELECT to_regclass(%s) IS NOT NULL AS ok", [f"{SCHEMA}.{t}"]).fetchone()["ok"]
    ]
    missing = sorted(set(RESET_TABLES) - set(present))
    if missing:
        ctx.note(f"the publisher has no table {', '.join(SCHEMA + '.' + t for t in missing)} (steps using it fail)")
    ctx.conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(_table(t) for t in present)))
    # A table a variant does not publish (row_filter_cost) keeps its rows on the nodes: emptied there directly,
    # once the nodes have applied everything up to the TRUNCATE.
    ctx.wait_caught_up(ctx.current_lsn(), timeout=timeout)
    for node in ctx.nodes:
        with node.connect() as conn:
            for table in present:
                if _has_rows(conn, table):
                    conn.execute(sql.SQL("TRUNCATE {}").format(_table(table)))


def _has_rows(conn, table):
    if not conn.execute("SELECT to_regclass(%s) IS NOT NULL AS ok", [f"{SCHEMA}.{table}"]).fetchone()["ok"]:
        return False
    return conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {}) AS has").format(_table(table))).fetchone()["has"]


# --- the probe ------------------------------------------------------------------------------------------


class Probe(threading.Thread):
    """Samples every PROBE_INTERVAL seconds: heartbeat lag, byte lag, retained WAL, walsender CPU, Docker stats."""

    def __init__(self, ctx):
        super().__init__(name="experiment-probe", daemon=True)
        self.ctx = ctx
        self.stop_event = threading.Event()
        self.beats = []  # [(id, unix ts)]
        self.heartbeat = {n.name: [] for n in ctx.nodes}
        self.byte_lag = {n.name: [] for n in ctx.nodes}
        self.retained = {n.name: [] for n in ctx.nodes}
        self.cpu_first = {n.name: {} for n in ctx.nodes}
        self.cpu_last = {n.name: {} for n in ctx.nodes}
        self.docker_cpu = {n.name: [] for n in ctx.nodes}
        self.docker_mem = {n.name: [] for n in ctx.nodes}
        self.error = None
        self.containers = {}
        if any(n.container for n in ctx.nodes):
            if docker is None:
                ctx.note("the Python docker package is missing: no subscriber CPU/memory measures")
            else:
                try:
                    client = docker.from_env()
                    for node in ctx.nodes:
                        if node.container:
                            self.containers[node.name] = client.containers.get(node.container)
                except Exception as exc:
                    ctx.note(f"Docker is not reachable ({exc}): no subscriber CPU/memory measures")

    def run(self):
        try:
            pub = connect(self.ctx.publisher)
            nodes = {n.name: n.connect() for n in self.ctx.nodes}
        except Exception as exc:
            self.error = exc
            return
        try:
            serial = 0
            while True:
                started = time.monotonic()
                serial += 1
                self.sample(pub, nodes, serial)
                if self.stop_event.wait(max(0.0, catalog.PROBE_INTERVAL - (time.monotonic() - started))):
                    break
            self.sample(pub, nodes, serial + 1)
        except Exception as exc:
            self.error = exc
        finally:
            pub.close()
            for conn in nodes.values():
                conn.close()

    def sample(self, pub, conns, serial):
        ts = _now()
        pub.execute(catalog.HEARTBEAT_INSERT, [serial, serial, ts])
        self.beats.append((serial, ts))
        for node in self.ctx.nodes:
            name = node.name
            try:
                seen = conns[name].execute(catalog.HEARTBEAT_SEEN).fetchone()["id"]
            except psycopg.Error:
                conns[name] = node.connect()
                continue
            now = _now()
            unseen = [t for i, t in self.beats if i > seen]
            self.heartbeat[name].append([round(now, 3), round(now - min(unseen), 3) if unseen else 0.0])
            rows = pub.execute(catalog.SENDER_LAG, [node.app_names()]).fetchall()
            if rows:
                self.byte_lag[name].append([round(now, 3), sum(max(0, r["replay_lag_bytes"] or 0) for r in rows)])
            if self.ctx.pub_local:
                for row in rows:
                    cpu = proc_cpu_seconds(row["pid"])
                    if cpu is not None:
                        self.cpu_first[name].setdefault(row["pid"], cpu)
                        self.cpu_last[name][row["pid"]] = cpu
            slots = pub.execute(catalog.SLOT_RETAINED, [[node.slot_name]]).fetchall()
            for slot in slots:
                if slot["retained_bytes"] is not None:
                    self.retained[name].append(slot["retained_bytes"])
                self.ctx.observe_wal_status(node, slot["wal_status"], now)
            container = self.containers.get(name)
            if container is not None:
                usage, memory = container_sample(container)
                if usage is not None:
                    self.docker_cpu[name].append(usage)
                if memory is not None:
                    self.docker_mem[name].append(memory)

    def stop(self):
        self.stop_event.set()
        self.join(30)


class MarkerPoller(threading.Thread):
    """Per node: polls every 10 ms for the pending marker row and records its visibility delay."""

    def __init__(self, ctx, node):
        super().__init__(name=f"experiment-marker-{node.name}", daemon=True)
        self.ctx = ctx
        self.node = node
        self.stop_event = threading.Event()
        self.conn = node.connect()
        self.seen_id = 0

    def run(self):
        try:
            while not self.stop_event.is_set():
                pending = self.ctx.pending_marker
                if pending is None or pending[0] <= self.seen_id or self.node.lost:
                    time.sleep(catalog.MARKER_POLL_INTERVAL)
                    continue
                marker_id, t_commit = pending
                if self.conn.execute(catalog.MARKER_SEEN, [marker_id]).fetchone():
                    delay = time.monotonic() - t_commit
                    with self.ctx.lock:
                        self.ctx.visible.setdefault(marker_id, {})[self.node.name] = round(delay, 4)
                    self.seen_id = marker_id
                else:
                    time.sleep(catalog.MARKER_POLL_INTERVAL)
        finally:
            self.conn.close()

    def done(self):
        pending = self.ctx.pending_marker
        return pending is None or self.seen_id >= pending[0] or self.node.lost


def commit_with_marker(ctx, conn):
    """Insert the marker row in the open transaction of ``conn`` and COMMIT; the pollers take it from there."""
    marker_id = ctx.next_marker()
    conn.execute(catalog.MARKER_INSERT, [marker_id, ctx.label])
    conn.commit()
    ctx.marker_committed(marker_id, time.monotonic())


def marker_transaction(ctx):
    """A transaction of its own with the marker row, right after a step whose transactions are not ours."""
    with connect(ctx.publisher, autocommit=False) as conn:
        commit_with_marker(ctx, conn)


# --- steps ----------------------------------------------------------------------------------------------


def step_large_transaction(ctx, p):
    rows = int(p["rows"])
    first = ctx.take_ids(p["table"], rows)
    with connect(ctx.publisher, autocommit=False) as conn:
        started = time.monotonic()
        conn.execute(insert_series_sql(p["table"], p["payload_bytes"]), [first, first + rows - 1])
        commit_with_marker(ctx, conn)
        seconds = time.monotonic() - started
        conn.autocommit = True
        ctx.record_write(conn, rows, 1, seconds)


def _insert_batches(ctx, conn, table, rows, batch, payload_bytes, marker=True, live_key=None):
    statement = insert_series_sql(table, payload_bytes)
    first = ctx.take_ids(table, rows)
    done = 0
    committed = [0]
    if live_key is not None:
        with ctx.lock:
            ctx.live[live_key] = lambda: committed[0]
    transactions = 0
    while done < rows:
        size = min(int(batch), rows - done)
        conn.execute(statement, [first + done, first + done + size - 1])
        done += size
        transactions += 1
        if marker and done >= rows:
            commit_with_marker(ctx, conn)
        else:
            conn.commit()
        committed[0] = done
    return transactions


def step_burst(ctx, p):
    rows = int(p["rows"])
    with connect(ctx.publisher, autocommit=False) as conn:
        started = time.monotonic()
        key = object()
        transactions = _insert_batches(ctx, conn, p["table"], rows, p["batch"], p["payload_bytes"], live_key=key)
        seconds = time.monotonic() - started
        conn.autocommit = True
        ctx.record_write(conn, rows, transactions, seconds, live_key=key)


def step_pgbench(ctx, p):
    try:
        binary = find_pgbench()
        env = {**os.environ, **environment(ctx.publisher, ctx.publisher.get("login_password"))}
        scale = int(p["init_scale"] or 0)
        if scale > 0 and ctx.conn.execute("SELECT count(*) AS n FROM pgbench_branches").fetchone()["n"] != scale:
            init = subprocess.run(init_argv(binary, scale), env=env, capture_output=True, text=True, check=False)
            if init.returncode:
                raise ExperimentError(f"pgbench -i failed: {init.stderr.strip()[-500:]}")
            ctx.note(f"pgbench: the tables were initialised at scale {scale} during this run")
            ctx.wait_caught_up(ctx.current_lsn(), timeout=600.0)
        argv = run_argv(binary, p["duration"], p["clients"], p["jobs"], p["rate"], builtin=p["builtin"], progress=0)
    except PgbenchError as exc:
        raise ExperimentError(str(exc)) from None
    started = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if result.returncode:
        raise ExperimentError(f"pgbench failed (rc {result.returncode}): {result.stderr.strip()[-500:]}")
    report = parse_report(result.stdout, result.stderr)
    transactions = int(report.get("transactions") or 0)
    if report.get("tps") is not None:
        with ctx.lock:
            ctx.pgbench_tps.append(report["tps"])
    if p["rate"] and report.get("late_transactions"):
        ctx.note(f"pgbench: {report['late_transactions']} transactions late against -R {p['rate']:g}")
    marker_transaction(ctx)
    with connect(ctx.publisher) as conn:
        ctx.record_write(conn, transactions * PGBENCH_ROWS_PER_TRANSACTION.get(p["builtin"], 1), transactions, seconds)


def step_hum(ctx, p):
    with connect(ctx.publisher) as conn:
        runner = LoadRunner(
            conn,
            schema=SCHEMA,
            table="books",
            pattern="hum",
            rate=p["rate"],
            duration=p["duration"],
            mix=p["mix"],
            id_base=1,
            report_interval=max(float(p["duration"]), 1.0),
            seed=1,
        )
        runner.load_existing()
        key = object()
        with ctx.lock:
            ctx.live[key] = lambda: sum(runner.counts.values())
        report = runner.run()
        if report["behind"]:
            ctx.note(f"hum: {report['behind']} operations behind its schedule of {p['rate']:g}/s")
        marker_transaction(ctx)
        ctx.record_write(conn, report["operations"], report["operations"], report["seconds"], live_key=key)


def _pause_and_resume(ctx, seconds=None, write=None, timeout=600.0):
    """Disable every live node's subscription, wait ``seconds`` or run ``write()``, then enable and time the drain.

    Returns (rows written meanwhile, their rows/s, {node: drain seconds})."""
    nodes = ctx.live_nodes()
    if write is None and not ctx.live:
        ctx.note("pause: no step was writing during the pause (put `background: true` on a writer before it)")
    rows_before = ctx.rows_now()
    ctx.set_enabled(nodes, False)
    try:
        ctx.wait_slot_inactive(nodes)
        started = time.monotonic()
        if write is not None:
            written, write_seconds = write()
        else:
            time.sleep(float(seconds))
            written = ctx.rows_now() - rows_before
            write_seconds = time.monotonic() - started
        lsn = ctx.current_lsn()
        for node in nodes:
            ctx.set_measure("retained_wal_at_resume_bytes", node.name, ctx.retained(node))
    finally:
        ctx.set_enabled(nodes, True)
    resumed = time.monotonic()
    seen = ctx.wait_caught_up(lsn, timeout=timeout, nodes=nodes)
    drain = {name: t - resumed for name, t in seen.items()}
    for name, seconds in drain.items():
        ctx.set_measure("resume_catchup_seconds", name, round(seconds, 3))
    return written, (written / write_seconds if write_seconds > 0 else None), drain


def _drain_measures(ctx, written, write_rate, drain):
    for name, seconds in drain.items():
        rate = written / seconds if seconds > 0 and written else None
        ctx.set_measure("apply_rows_per_second", name, round(rate, 1) if rate is not None else None)
        ratio = rate / write_rate if rate and write_rate else None
        ctx.set_measure("catchup_rate_ratio", name, round(ratio, 3) if ratio is not None else None)


def step_pause(ctx, p):
    written, write_rate, drain = _pause_and_resume(ctx, seconds=p["seconds"])
    _drain_measures(ctx, written, write_rate, drain)


def step_backlog(ctx, p):
    rows = int(p["rows"])

    def write():
        with connect(ctx.publisher, autocommit=False) as conn:
            started = time.monotonic()
            transactions = _insert_batches(ctx, conn, p["table"], rows, p["batch"], p["payload_bytes"])
            seconds = time.monotonic() - started
            conn.autocommit = True
            ctx.record_write(conn, rows, transactions, seconds)
        return rows, seconds

    written, write_rate, drain = _pause_and_resume(ctx, write=write, timeout=p["timeout"])
    _drain_measures(ctx, written, write_rate, drain)


def _lab_conninfo(ctx, node):
    """The connection string the node's lab subscription uses to reach the publisher (reused by the step's own)."""
    with node.connect() as conn:
        row = conn.execute(
            "SELECT subconninfo, subbinary::text AS binary, substream::text AS streaming"
            " FROM pg_catalog.pg_subscription WHERE subname = %s",
            [node.subscription],
        ).fetchone()
    if row is None:
        raise ExperimentError(f"{node.name}: subscription {node.subscription} does not exist")
    streaming = {"f": "off", "t": "on", "p": "parallel", "false": "off", "true": "on"}.get(row["streaming"], "off")
    return row["subconninfo"], {"binary": row["binary"] in ("t", "true"), "streaming": streaming}


def _with_options(options):
    parts = []
    for key, value in options.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        parts.append(sql.SQL("{} = {}").format(sql.Identifier(key), sql.Literal(str(value))))
    return sql.SQL(", ").join(parts)


def _create_subscription(ctx, node, name, publications, options):
    conninfo, copied = _lab_conninfo(ctx, node)
    options = {**copied, **options}
    if options.get("streaming") == "off" and (node.major or 99) < 16:
        options["streaming"] = False
    with node.connect() as conn:
        conn.execute(
            sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH ({})").format(
                sql.Identifier(name),
                sql.Literal(conninfo),
                sql.SQL(", ").join(sql.Identifier(p) for p in publications),
                _with_options(options),
            )
        )
    return options


def _drop_subscription(node, name):
    with node.connect() as conn:
        if conn.execute("SELECT 1 FROM pg_catalog.pg_subscription WHERE subname = %s", [name]).fetchone():
            conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(name)))


def _fill_sync_tables(ctx, rows, payload_bytes):
    """Fill the publisher's sync tables with ``rows`` rows in total, unless they already hold exactly those."""
    per_table = rows // len(SYNC_TABLES)
    count = sql.SQL("SELECT count(*) AS n, coalesce(max(id), 0) AS last FROM {}")
    for name in SYNC_TABLES:
        row = ctx.conn.execute(count.format(_table(name))).fetchone()
        if row["n"] == per_table and row["last"] == per_table:
            continue
        with ctx.conn.transaction():
            ctx.conn.execute(sql.SQL("TRUNCATE {}").format(_table(name)))
            ctx.conn.execute(
                sql.SQL("INSERT INTO {} (id, k, payload) SELECT g, g, {} FROM generate_series(1, %s::bigint) g").format(
                    _table(name), _payload_sql(payload_bytes)
                ),
                [per_table],
            )
        ctx.conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(_table(name)))
    return per_table * len(SYNC_TABLES)


def step_initial_sync(ctx, p):
    exists = ctx.conn.execute("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = %s", [SYNC_PUBLICATION])
    if exists.fetchone() is None:
        raise ExperimentError(
            f"initial_sync: publication {SYNC_PUBLICATION} (experiment.sync_1..4) is missing on the "
            "publisher; `make lab` creates it"
        )
    total = _fill_sync_tables(ctx, int(p["rows"]), p["payload_bytes"])
    ddl = sql.SQL("CREATE TABLE IF NOT EXISTS {} (id bigint PRIMARY KEY, k integer NOT NULL, payload text NOT NULL)")
    for node in ctx.live_nodes():
        name = SYNC_SUBSCRIPTION_PREFIX + _ident(node.name)
        with node.connect() as conn:
            try:
                _drop_subscription(node, name)
                for table in SYNC_TABLES:
                    conn.execute(ddl.format(_table(table)))
                    conn.execute(sql.SQL("TRUNCATE {}").format(_table(table)))
                node.extra_subscriptions.append(name)
                started = time.monotonic()
                options = _create_subscription(ctx, node, name, [SYNC_PUBLICATION], dict(p["options"] or {}))
                if options.get("binary") and (ctx.pub_major < 16 or (node.major or 0) < 16):
                    ctx.note(
                        f"{node.name}: binary = true does not make the initial COPY binary here (that needs publisher "
                        f"and subscriber 16+; publisher {ctx.pub_major}, {node.name} {node.major}): it only changes "
                        "the format of the changes streamed after the copy"
                    )
                deadline = started + float(p["timeout"])
                while True:
                    row = conn.execute(catalog.SUBSCRIPTION_READY, [name]).fetchone()
                    if row["tables"] == len(SYNC_TABLES) and row["ready"] == row["tables"]:
                        break
                    if time.monotonic() > deadline:
                        raise ExperimentError(
                            f"{node.name}: {row['ready']}/{len(SYNC_TABLES)} tables ready after {p['timeout']} s"
                        )
                    time.sleep(POLL)
                ctx.set_measure("initial_sync_seconds", node.name, round(time.monotonic() - started, 3))
                copied = sum(
                    conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(_table(t))).fetchone()["n"]
                    for t in SYNC_TABLES
                )
                if copied != total:
                    ctx.note(f"{node.name}: the initial sync copied {copied} rows, expected {total}")
                _drop_subscription(node, name)
                node.extra_subscriptions.remove(name)
                if ctx.baseline == "copy":
                    ctx.set_measure("baseline_copy_seconds", node.name, round(copy_tables(ctx, conn, SYNC_TABLES), 3))
            finally:
                if name in node.extra_subscriptions:
                    node.extra_subscriptions.remove(name)
                _drop_subscription(node, name)
                for table in SYNC_TABLES:
                    conn.execute(sql.SQL("TRUNCATE {}").format(_table(table)))


def copy_tables(ctx, node_conn, tables):
    """The baseline: COPY ... TO STDOUT on the publisher streamed into COPY ... FROM STDIN on the node."""
    for name in tables:
        node_conn.execute(sql.SQL("TRUNCATE {}").format(_table(name)))
    started = time.monotonic()
    with node_conn.transaction(), connect(ctx.publisher) as pub:
        for name in tables:
            with pub.cursor().copy(sql.SQL("COPY {} TO STDOUT").format(_table(name))) as source:
                with node_conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(_table(name))) as target:
                    for data in source:
                        target.write(data)
    return time.monotonic() - started


def step_update_delete(ctx, p):
    rows, batch, table = int(p["rows"]), int(p["batch"]), p["table"]
    first = ctx.take_ids(table, rows)
    nodes = ctx.live_nodes()
    with connect(ctx.publisher, autocommit=False) as conn:
        conn.execute(insert_series_sql(table, 100), [first, first + rows - 1])
        conn.commit()
        conn.autocommit = True
        ctx.wait_caught_up(ctx.current_lsn(conn), timeout=p["timeout"], conn=conn, nodes=nodes)
        conn.autocommit = False
        update = sql.SQL("UPDATE {} SET payload = md5(payload) WHERE id BETWEEN %s AND %s").format(_table(table))
        delete = sql.SQL("DELETE FROM {} WHERE id BETWEEN %s AND %s").format(_table(table))
        started = time.monotonic()
        transactions = 0
        for statement in (update, delete):
            for low in range(first, first + rows, batch):
                conn.execute(statement, [low, min(low + batch, first + rows) - 1])
                transactions += 1
                if statement is delete and low + batch >= first + rows:
                    commit_with_marker(ctx, conn)
                else:
                    conn.commit()
        seconds = time.monotonic() - started
        conn.autocommit = True
        ctx.record_write(conn, 2 * rows, transactions, seconds)
        seen = ctx.wait_caught_up(ctx.last_write["lsn"], timeout=p["timeout"], conn=conn, nodes=nodes)
    for name, t_seen in seen.items():
        ctx.set_measure("apply_rows_per_second", name, round(2 * rows / (t_seen - started), 1))


def subscriber_error(ctx, node, since):
    """The error the node's subscription reports after its slot was lost: its container log, else the
    publisher's answer to START_REPLICATION on that slot (what the apply worker receives)."""
    container = None
    if node.container and docker is not None:
        try:
            container = docker.from_env().containers.get(node.container)
        except Exception:
            container = None
    if container is not None:
        text = container.logs(since=int(since), stdout=True, stderr=True).decode(errors="replace")
        errors = [" ".join(line.split()) for line in text.splitlines() if "ERROR:" in line]
        if errors:
            return errors[-1]
    with _replication_connection(ctx) as conn:
        command = sql.SQL(
            "START_REPLICATION SLOT {} LOGICAL 0/0 (proto_version '1', publication_names 'experiment_pub')"
        ).format(sql.Identifier(node.slot_name))
        result = conn.pgconn.exec_(command.as_bytes(conn))
        message = " ".join(result.error_message.decode(errors="replace").split())
    return f"(publisher's answer to the subscriber's START_REPLICATION) {message}" if message else None


def _replication_connection(ctx):
    return psycopg.connect(autocommit=True, replication="database", **connection_kwargs(ctx.publisher))


def step_slot_limit(ctx, p):
    nodes = ctx.live_nodes()
    setting = ctx.conn.execute("SELECT current_setting('max_slot_wal_keep_size') AS v").fetchone()["v"]
    if setting in ("-1", "-1MB"):
        raise ExperimentError(
            "slot_limit: max_slot_wal_keep_size is -1 (unlimited) on the publisher; set it in the "
            "variant's publisher_settings"
        )
    ctx.set_enabled(nodes, False)
    ctx.wait_slot_inactive(nodes)
    statement = insert_series_sql(p["table"], p["payload_bytes"])
    lost_at = {}
    written = 0
    started = time.monotonic()
    transactions = 0
    try:
        with connect(ctx.publisher) as conn:
            while written < int(p["max_rows"]) and len(lost_at) < len(nodes):
                size = min(int(p["batch"]), int(p["max_rows"]) - written)
                first = ctx.take_ids(p["table"], size)
                conn.execute(statement, [first, first + size - 1])
                written += size
                transactions += 1
                conn.execute("SELECT pg_catalog.pg_switch_wal()")
                conn.execute("CHECKPOINT")
                rows = {r["slot_name"]: r for r in conn.execute(catalog.SLOT_RETAINED, [[n.slot_name for n in nodes]])}
                for node in nodes:
                    row = rows.get(node.slot_name)
                    status = row["wal_status"] if row else "missing"
                    ctx.observe_wal_status(node, status)
                    if status in ("lost", "missing") and node.name not in lost_at:
                        lost_at[node.name] = time.monotonic()
            ctx.record_write(conn, written, transactions, time.monotonic() - started)
    finally:
        enabled_at = _now()
        ctx.set_enabled(nodes, True)
    for node in nodes:
        if node.name in lost_at:
            ctx.set_measure("slot_lost_seconds", node.name, round(lost_at[node.name] - started, 3))
            node.lost = True
            error = None
            deadline = time.monotonic() + float(p["error_wait"])
            while error is None and time.monotonic() < deadline:
                time.sleep(1.0)
                error = subscriber_error(ctx, node, enabled_at)
            ctx.event(node.name, f"subscriber error: {error}" if error else "no subscriber error seen")
            ctx.recovery[node.name] = {"subscription": node.subscription, "slot": node.slot_name, "error": error}
        else:
            ctx.set_measure("slot_lost_seconds", node.name, None)
            ctx.note(
                f"{node.name}: slot {node.slot_name} survived {written} rows (max_rows) - raise max_rows or lower "
                f"max_slot_wal_keep_size (now {setting})"
            )


def join_background(ctx):
    while ctx.background:
        thread = ctx.background.pop(0)
        thread.join()
        if thread.error is not None:
            raise thread.error


def step_wait_caught_up(ctx, p):
    join_background(ctx)
    last = ctx.last_write
    lsn = last["lsn"] if last else ctx.current_lsn()
    seen = ctx.wait_caught_up(lsn, timeout=p["timeout"])
    if last and ctx.catchup_serial != last["serial"]:
        ctx.catchup = {name: round(max(0.0, t - last["t"]), 3) for name, t in seen.items()}
        ctx.catchup_serial = last["serial"]


def step_sleep(ctx, p):
    time.sleep(float(p["seconds"]))


STEP_FUNCTIONS = {
    "large_transaction": step_large_transaction,
    "burst": step_burst,
    "pgbench": step_pgbench,
    "hum": step_hum,
    "pause": step_pause,
    "backlog": step_backlog,
    "initial_sync": step_initial_sync,
    "update_delete": step_update_delete,
    "slot_limit": step_slot_limit,
    "wait_caught_up": step_wait_caught_up,
    "sleep": step_sleep,
}


class StepThread(threading.Thread):
    def __init__(self, ctx, params):
        super().__init__(name=f"experiment-step-{params['step']}", daemon=True)
        self.ctx = ctx
        self.params = params
        self.error = None

    def run(self):
        try:
            STEP_FUNCTIONS[self.params["step"]](self.ctx, self.params)
        except Exception as exc:
            self.error = exc


# --- the run ----------------------------------------------------------------------------------------------


def _node_counters(ctx, node_conns):
    """Cumulative counters read at the run's start and end: slot stats (publisher), subscription stats (node)."""
    out = {}
    for node in ctx.nodes:
        counters = {}
        if ctx.pub_major >= 14:
            counters.update(ctx.conn.execute(catalog.SLOT_STATS, [[node.slot_name]]).fetchone())
        if (node.major or 0) >= 15 and node.name in node_conns:
            try:
                counters.update(
                    node_conns[node.name].execute(catalog.SUBSCRIPTION_STATS, [[node.subscription]]).fetchone()
                )
            except psycopg.Error:
                node_conns[node.name] = node.connect()
        out[node.name] = counters
    return out


def _per_node(ctx, value_of):
    return {node.name: value_of(node) for node in ctx.nodes}


def compute_measures(ctx, probe, before, after):
    names = {n.name for n in ctx.nodes}
    last_marker = ctx.pending_marker[0] if ctx.pending_marker else None
    writes = ctx.writes
    tps = (
        statistics.mean(ctx.pgbench_tps)
        if ctx.pgbench_tps
        else (writes["transactions"] / writes["seconds"] if writes["seconds"] > 0 else None)
    )
    values = {
        "commit_visible_seconds": {n: ctx.visible.get(last_marker, {}).get(n) for n in names},
        "catchup_seconds": {n: ctx.catchup.get(n) for n in names},
        "heartbeat_lag_median_seconds": {
            n: round(statistics.median([sample[1] for sample in probe.heartbeat[n]]), 3) if probe.heartbeat[n] else None
            for n in names
        },
        "heartbeat_lag_max_seconds": {
            n: max((sample[1] for sample in probe.heartbeat[n]), default=None) for n in names
        },
        "byte_lag_max_bytes": {n: max((sample[1] for sample in probe.byte_lag[n]), default=None) for n in names},
        "retained_wal_peak_bytes": {n: max(probe.retained[n], default=None) for n in names},
        "publisher_tps": round(tps, 2) if tps is not None else None,
        "publisher_rows_per_second": round(writes["rows"] / writes["seconds"], 1) if writes["seconds"] > 0 else None,
        "workload_seconds": round(writes["seconds"], 3),
        "walsender_cpu_seconds": {
            n: round(sum(probe.cpu_last[n][pid] - probe.cpu_first[n][pid] for pid in probe.cpu_last[n]), 3)
            if ctx.pub_local and probe.cpu_last[n]
            else None
            for n in names
        },
        "subscriber_cpu_seconds": {
            n: round((probe.docker_cpu[n][-1] - probe.docker_cpu[n][0]) / 1e9, 3)
            if len(probe.docker_cpu[n]) > 1
            else None
            for n in names
        },
        "subscriber_memory_peak_bytes": {n: max(probe.docker_mem[n], default=None) for n in names},
    }
    for key, column in (
        ("spill_bytes", "spill_bytes"),
        ("spill_count", "spill_count"),
        ("stream_bytes", "stream_bytes"),
        ("stream_count", "stream_count"),
        ("apply_error_count", "apply_error_count"),
        ("sync_error_count", "sync_error_count"),
    ):
        values[key] = {
            n: (after[n][column] - before[n][column]) if column in after[n] and column in before[n] else None
            for n in names
        }
    for key, value in ctx.step_measures.items():
        values[key] = {n: value.get(n) for n in names} if isinstance(value, dict) else value
    return values


def _explain_missing(ctx, name, value):
    meta = catalog.CATALOG[name]
    missing = (
        [n for n, v in value.items() if v is None]
        if meta["per_node"] and isinstance(value, dict)
        else (["run"] if value is None else [])
    )
    if not missing:
        return
    reasons = {
        "spill_bytes": "pg_stat_replication_slots needs a PostgreSQL 14+ publisher",
        "apply_error_count": "pg_stat_subscription_stats needs a 15+ node",
        "walsender_cpu_seconds": "the publisher is not on this host (/proc) or no walsender was seen",
        "subscriber_cpu_seconds": "the node has no container (nodes[].container) or Docker is not reachable",
        "subscriber_memory_peak_bytes": "the node has no container (nodes[].container) or Docker is not reachable",
        "commit_visible_seconds": "no marker row became visible (a lost slot, or no writing step)",
        "catchup_seconds": "no wait after a writing step",
    }
    why = reasons.get(name, "the workload has no step that produces it")
    ctx.note(f"{name}: no value for {', '.join(missing)} ({why})")


def run_experiment(publisher, nodes, steps, measures, baseline=None, run=None):
    """Run one variant's workload: reset, probe + marker pollers, the steps, then the measures.

    Returns ``{"measures", "series", "events", "notes", "recovery", "started_at", "finished_at"}``.
    """
    resolved = [resolve_params(step) for step in steps]
    for name in measures:
        catalog.describe(name)
    started_at = _now()
    ctx = Context(publisher, nodes, measures, baseline, run)
    probe = None
    pollers = []
    node_conns = {}
    try:
        for node in ctx.nodes:
            node_conns[node.name] = node.connect()
            if node.major is None:
                node.major = node_conns[node.name].info.server_version // 10000
        reset(ctx)
        before = _node_counters(ctx, node_conns)
        probe = Probe(ctx)
        probe.start()
        pollers = [MarkerPoller(ctx, node) for node in ctx.nodes]
        for poller in pollers:
            poller.start()
        for params in resolved:
            if params["background"]:
                thread = StepThread(ctx, params)
                ctx.background.append(thread)
                thread.start()
            else:
                STEP_FUNCTIONS[params["step"]](ctx, params)
        join_background(ctx)
        if "catchup_seconds" in measures and ctx.last_write and ctx.catchup_serial != ctx.last_write["serial"]:
            step_wait_caught_up(ctx, {"timeout": 600.0})
        deadline = time.monotonic() + 600
        while any(not p.done() for p in pollers) and time.monotonic() < deadline:
            time.sleep(0.05)
        after = _node_counters(ctx, node_conns)
    finally:
        for poller in pollers:
            poller.stop_event.set()
        if probe is not None:
            probe.stop()
        for thread in ctx.background:
            thread.join(60)
        for conn in node_conns.values():
            conn.close()
    if probe.error is not None:
        ctx.note(f"probe stopped early: {probe.error}")
    values = compute_measures(ctx, probe, before, after)
    out = {}
    for name in measures:
        value = values.get(name)
        if value is None and catalog.CATALOG[name]["per_node"]:
            value = {n.name: None for n in ctx.nodes}
        _explain_missing(ctx, name, value)
        out[name] = value
    ctx.conn.close()
    return {
        "measures": out,
        "series": {"heartbeat_lag": probe.heartbeat, "byte_lag": probe.byte_lag},
        "events": ctx.events,
        "notes": ctx.notes,
        "recovery": ctx.recovery,
        "started_at": iso(started_at),
        "finished_at": iso(_now()),
    }
