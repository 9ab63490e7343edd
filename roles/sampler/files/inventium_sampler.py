# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""inventium-sampler: replication metrics of every node into InfluxDB, every second.

One thread per PostgreSQL node keeps ONE persistent connection, opened by the collection's
``connection.py`` (``jit`` off, ``application_name`` ``inventium-sampler``, a short
``statement_timeout``), and runs the replication core's collectors - ``_slots.py`` and
``_subscriptions.py`` (the same SQL as the modules and ``replication_info``) and ``_metrics.py``
(what the sampler measures besides) - on every tick of the wall clock (``--interval`` seconds,
ticks aligned to multiples of it, so points of all nodes share timestamps). The queries of a tick,
the heartbeat and ``pg_stat_statements`` included, go to the server in one pipeline
(``_metrics.collect_round``: one round trip); the nodes' rounds of a tick take turns (:class:`Turn`).
A writer thread
sends the points in batches with ``plugins/module_utils/_influx.py`` (InfluxDB API v1 or v2). A
container thread reads the containers' CPU, memory, I/O and process counts from their cgroup files
(``docker.cgroup``: a read-only copy of the host's ``/sys/fs/cgroup``, cgroup v1 or v2, and the
containers' ids; no Docker API) or, without it, one-shot stats from the Docker socket.

It never dies because a node or InfluxDB is down: a failing node is retried with exponential
backoff (capped) while the other nodes are sampled; errors are counted in the measurement
``sampler_errors`` (tags ``node``, ``kind``); points wait in a bounded buffer while InfluxDB is
unreachable (the oldest are dropped first and counted). One log line per problem (when it starts
and when it ends), never a password. SIGTERM/SIGINT stop it after a final flush.

Configuration: ``--endpoints .lab/endpoints.json`` (the lab) or ``--config file.json`` (same
shape) with the sections ``postgresql`` (nodes: ``kind``, ``host``, ``port``, ``dbname``,
``user``, ``password_file``, optional ``sslmode``/``sslrootcert``), ``influxdb`` (see
influx.client_from_endpoints) and ``docker`` (``containers``, optional ``cgroup`` or ``socket``), and an
optional ``sampler`` section with defaults for the command line options. The measurements and
their fields are documented in ``roles/sampler/README.md``.

The collection's module_utils package comes from ``lib/`` next to this file when the ``sampler``
role deployed it (the role ships all of it), or from the repository checkout it lives in.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import http.client
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _module_utils_path():
    """Where ``ansible_collections`` is: ``lib/`` beside a deployed copy, else the checkout's ``collections/``."""
    deployed = HERE / "lib"
    if (deployed / "ansible_collections").is_dir():
        return deployed
    return HERE.parents[2] / "collections"


sys.path.insert(0, str(_module_utils_path()))

from ansible_collections.inventium.logical_replication.plugins.module_utils import _influx as influx  # noqa: E402
from ansible_collections.inventium.logical_replication.plugins.module_utils import (  # noqa: E402
    _metrics,
    _pause_record,
    _slots,
    _subscriptions,
    connection,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import redact  # noqa: E402

LOG = logging.getLogger("inventium-sampler")
APPLICATION_NAME = "inventium-sampler"
DEFAULTS = {
    "interval": 1.0,
    "batch_size": 5000,
    "buffer_points": 100000,
    "backoff_initial": 1.0,
    "backoff_max": 30.0,
    "statement_timeout_ms": 0,  # 0: derived from the interval
    "connect_timeout": 3,
    "node_name": "sampler",
    "influx_timeout": 5.0,
}
DOCKER_SOCKET = "/var/run/docker.sock"
STATEMENTS_RECHECK_SECONDS = 60.0
HEARTBEAT_RECHECK_SECONDS = 10.0
HEARTBEAT_BEATS_KEPT = 3600
"""Beats whose write time the sampler remembers per publisher (an hour at 1 s): a node further behind, or
behind since before the sampler started, gets the fallback value flagged ``estimated``."""
TURN_WAIT_FRACTION = 0.1
"""How long a node's round waits for the round before it (see :class:`Turn`), as a fraction of the interval."""
DATABASE_SIZE_SECONDS = 30.0
"""pg_database_size() stats every file of the database: measured every 30 s, the last value written every round."""


class ConfigError(ValueError):
    """The configuration file is unusable."""


# ----------------------------------------------------------------------------------------------
# Small pieces (pure, unit-tested)
# ----------------------------------------------------------------------------------------------


class Backoff:
    """Exponential backoff: ``initial``, doubling per failure, capped at ``maximum`` seconds."""

    def __init__(self, initial=1.0, maximum=30.0, factor=2.0):
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.factor = float(factor)
        self.failures = 0

    def delay(self):
        """The wait after the current number of failures (0 when none)."""
        if self.failures == 0:
            return 0.0
        return min(self.maximum, self.initial * self.factor ** (self.failures - 1))

    def fail(self):
        """Count a failure; return the wait before the next attempt."""
        self.failures += 1
        return self.delay()

    def reset(self):
        self.failures = 0


class PointBuffer:
    """A bounded FIFO of line protocol strings; when full the OLDEST are dropped and counted."""

    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("the buffer needs room for at least one point")
        self.capacity = int(capacity)
        self.dropped = 0
        self._lines = collections.deque()
        self._lock = threading.Lock()

    def __len__(self):
        with self._lock:
            return len(self._lines)

    def _trim(self):
        excess = len(self._lines) - self.capacity
        for _index in range(max(0, excess)):
            self._lines.popleft()
        self.dropped += max(0, excess)

    def add(self, lines):
        with self._lock:
            self._lines.extend(lines)
            self._trim()

    def take(self, count):
        """Remove and return up to ``count`` of the oldest points."""
        with self._lock:
            taken = []
            while self._lines and len(taken) < count:
                taken.append(self._lines.popleft())
            return taken

    def put_back(self, lines):
        """Return points that could not be written to the front (they are the oldest; trimmed first)."""
        with self._lock:
            self._lines.extendleft(reversed(lines))
            self._trim()


class ErrorCounter:
    """Cumulative error counts per (node, kind), and whether each source is currently failing."""

    def __init__(self):
        self._counts = {}
        self._failing = {}
        self._lock = threading.Lock()

    def record(self, node, kind, message, source=None):
        """Count an error of ``node``; log it when ``source`` (default: the node) was not failing so before.

        Returns True when it was logged (a new problem), so there is one log line per problem.
        """
        source = source or node
        with self._lock:
            self._counts[(node, kind)] = self._counts.get((node, kind), 0) + 1
            first = self._failing.get(source) != kind
            self._failing[source] = kind
        if first:
            text = redact(str(message)).strip().splitlines() if message else []
            LOG.warning("%s: %s: %s", node, kind, text[0] if text else "")
        return first

    def ok(self, source, what="recovered"):
        """``source`` works again; log it when it was failing. Returns True when it was."""
        with self._lock:
            was = self._failing.pop(source, None)
        if was is not None:
            LOG.warning("%s: %s (was failing: %s)", source, what, was)
        return was is not None

    def failing(self):
        with self._lock:
            return dict(self._failing)

    def counts(self):
        with self._lock:
            return dict(self._counts)


class BeatLog:
    """When the sampler wrote each recent heartbeat beat, per publisher (``seq`` -> write time), bounded.

    Write times and the ``now`` a lag is computed with are both readings of the sampler's monotonic clock:
    a difference of two readings of one clock needs no synchronised clocks between the hosts and is not
    moved by NTP steps. (The publisher's ``beat_at`` would need "now" on the publisher's clock too, which
    a subscriber's round does not have without another query.)
    """

    def __init__(self, capacity=HEARTBEAT_BEATS_KEPT):
        if capacity < 1:
            raise ValueError("the beat log needs room for at least one beat")
        self.capacity = int(capacity)
        self._beats = {}
        self._lock = threading.Lock()

    def record(self, source, seq, written_at):
        """``source`` (the publisher's node name) committed its beat ``seq`` at ``written_at``."""
        with self._lock:
            beats = self._beats.setdefault(source, collections.deque(maxlen=self.capacity))
            if beats and seq <= beats[-1][0]:
                beats.clear()  # the row was re-created, seq starts again: the kept times belong to other beats
            beats.append((int(seq), float(written_at)))

    def __len__(self):
        with self._lock:
            return sum(len(beats) for beats in self._beats.values())

    def lag(self, source, seen_seq, now):
        """Seconds since the oldest beat of ``source`` after ``seen_seq`` was written (0.0: none, caught up).

        None when that beat's write time is unknown: the sampler has recorded no beat of ``source`` yet
        (it just started), or the beat is older than the log or was never recorded (its answer was lost).
        """
        with self._lock:
            beats = self._beats.get(source)
            if not beats:
                return None
            if seen_seq >= beats[-1][0]:
                return 0.0
            # Newest first: the usual lag is a beat or two, so this stops after a step or two.
            for seq, written_at in reversed(beats):
                if seq == seen_seq + 1:
                    return max(0.0, now - written_at)
                if seq <= seen_seq:
                    break
            return None


def heartbeat_lag(beat, reader, beats, now):
    """The ``heartbeat_lag`` of one heartbeat row read on node ``reader`` (``beat``: a row of collect_heartbeat).

    ``lag_seconds`` is the time since the oldest beat ``reader`` has not seen was written (0 when it has
    seen the latest, growing one second per second while it is stalled), from the write times in ``beats``
    (a :class:`BeatLog`; ``now`` on its clock). When that write time is unknown, the row's age on the
    reader's clock is used instead and ``estimated`` is True: the age of the newest beat seen, which is up to
    one interval more than the age of the oldest unseen one (plus any clock offset between the hosts).
    """
    source, seq = beat.get("node"), beat.get("seq")
    if source == reader:
        lag = 0.0  # the writer has every beat it wrote
    else:
        lag = None if seq is None else beats.lag(source, int(seq), now)
    estimated = lag is None
    if estimated:
        lag = beat.get("lag_seconds")
    return {"node": source, "lag_seconds": lag, "seq": seq, "estimated": estimated}


def next_tick(now, interval):
    """The first multiple of ``interval`` (seconds since the epoch) strictly after ``now``."""
    return (math.floor(now / interval) + 1) * interval


def _int(value):
    return None if value is None else int(value)


def _flag(value):
    """Booleans are written as 0/1 integers: InfluxQL aggregates (mean, max) work on them, not on booleans."""
    return None if value is None else int(bool(value))


def _seconds_since(stamp, ts):
    """Seconds from ``stamp`` (ISO 8601 text with a time zone, as ``_slots.slot_state`` returns ``inactive_since``)
    to the tick ``ts`` (ns); None without a stamp. The server's clock against the sampler's: never negative."""
    if stamp is None:
        return None
    return max(0.0, ts / 1e9 - dt.datetime.fromisoformat(stamp).timestamp())


def _point(measurement, tags, fields, ts):
    try:
        return [influx.line(measurement, tags, fields, ts)]
    except ValueError:
        return []  # no field had a value (e.g. every lag column NULL): nothing to say


def node_points(node, facts, ts):
    """Line protocol for one node's round: ``facts`` holds what :class:`NodeSampler` collected.

    Keys (each optional): ``locks``, ``activity``, ``database``, ``checkpoints``, ``statements``,
    ``senders``, ``slots``, ``subscriptions``, ``heartbeat``.
    """
    lines = []
    for mode, counts in sorted((facts.get("locks") or {}).items()):
        lines += _point("locks", {"node": node, "mode": mode}, counts, ts)
    if facts.get("activity"):
        lines += _point("activity", {"node": node}, facts["activity"], ts)
    if facts.get("database"):
        fields = dict(facts["database"])
        database = fields.pop("database", None)
        lines += _point("database", {"node": node, "database": database}, fields, ts)
    if facts.get("checkpoints"):
        lines += _point("checkpoints", {"node": node}, facts["checkpoints"], ts)
    if facts.get("statements"):
        lines += _point("statements", {"node": node}, facts["statements"], ts)
    for sender in facts.get("senders") or ():
        fields = {f"{kind}_lag_bytes": sender.get(f"{kind}_lag_bytes") for kind in ("sent", "write", "flush", "replay")}
        fields.update(
            {f"{kind}_lag_seconds": sender.get(f"{kind}_lag_seconds") for kind in ("write", "flush", "replay")}
        )
        fields["seconds_since_reply"] = sender.get("seconds_since_reply")
        fields["state"] = sender.get("state")
        fields["sync_state"] = sender.get("sync_state")
        tags = {"node": node, "application_name": sender.get("application_name"), "slot_name": sender.get("slot_name")}
        lines += _point("replication", tags, fields, ts)
    for slot in facts.get("slots") or ():
        fields = {
            "active": _flag(slot.get("active")),
            "retained_wal_bytes": _int(slot.get("retained_wal_bytes")),
            "confirmed_flush_lag_bytes": _int(slot.get("confirmed_flush_lag_bytes")),
            "wal_status": slot.get("wal_status"),
            "safe_wal_size": _int(slot.get("safe_wal_size")),
            # Columns of newer servers only (_slots.slot_columns): absent on older ones, not written as nulls.
            "conflicting": _flag(slot.get("conflicting")),
            "failover": _flag(slot.get("failover")),
            "synced": _flag(slot.get("synced")),
            "inactive_seconds": _seconds_since(slot.get("inactive_since"), ts),
            "invalidation_reason": slot.get("invalidation_reason"),
        }
        tags = {"node": node, "slot_name": slot.get("name"), "slot_type": slot.get("slot_type")}
        lines += _point("replication_slot", tags, fields, ts)
    for sub in facts.get("subscriptions") or ():
        table_states = sub.get("table_states") or {}
        fields = {
            "enabled": _flag(sub.get("enabled")),
            "worker_running": _flag(sub.get("apply_worker_pid") is not None),
            "apply_error_count": _int(sub.get("apply_error_count")),
            "sync_error_count": _int(sub.get("sync_error_count")),
            "tables_total": sum(table_states.values()),
            "tables_ready": int(table_states.get("ready", 0)),
            "seconds_since_last_msg": sub.get("seconds_since_last_msg_receipt"),
        }
        # A planned pause (playbooks/pause.yml) and how long past its plan: the "pause overdue" alert.
        paused, overdue = _pause_record.pause_state(sub)
        fields["paused"] = _flag(paused)
        fields["pause_overdue_seconds"] = overdue
        for kind, count in sorted((sub.get("conflicts") or {}).items()):
            fields[f"confl_{kind}"] = _int(count)
        lines += _point("subscription", {"node": node, "subscription": sub.get("name")}, fields, ts)
    for beat in facts.get("heartbeat") or ():
        fields = {
            "lag_seconds": beat.get("lag_seconds"),
            "seq": _int(beat.get("seq")),
            "estimated": _flag(beat.get("estimated")),
        }
        lines += _point("heartbeat_lag", {"node": node, "source": beat.get("node")}, fields, ts)
    return lines


def container_fields(stats, previous=None):
    """Fields of a ``container`` point from one Docker stats document (``previous``: the last one, for CPU %).

    Returns None for a container that is not running (Docker answers with empty stats).
    """
    cpu = stats.get("cpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage")
    system = cpu.get("system_cpu_usage")
    if not total or not system:
        return None
    pre = stats.get("precpu_stats") or {}
    pre_total = (pre.get("cpu_usage") or {}).get("total_usage")
    pre_system = pre.get("system_cpu_usage")
    if not pre_total or not pre_system:  # one-shot stats: compare with our previous sample
        prev_cpu = (previous or {}).get("cpu_stats") or {}
        pre_total = (prev_cpu.get("cpu_usage") or {}).get("total_usage")
        pre_system = prev_cpu.get("system_cpu_usage")
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or ()) or 1
    cpu_percent = None
    if pre_total is not None and pre_system is not None and system > pre_system and total >= pre_total:
        cpu_percent = (total - pre_total) / (system - pre_system) * cpus * 100.0
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    mem_stats = memory.get("stats") or {}
    # What `docker stats` shows: usage minus the page cache (cgroup v1 total_inactive_file, v2 inactive_file).
    cache = mem_stats.get("total_inactive_file", mem_stats.get("inactive_file", 0))
    used = usage - cache if usage is not None and cache is not None and usage >= cache else usage
    limit = memory.get("limit")
    fields = {
        "cpu_percent": cpu_percent,
        "online_cpus": int(cpus),
        "memory_usage_bytes": _int(used),
        "memory_limit_bytes": _int(limit),
        "memory_percent": used / limit * 100.0 if used is not None and limit else None,
    }
    networks = stats.get("networks")
    if networks:
        fields["net_rx_bytes"] = sum(int(n.get("rx_bytes", 0)) for n in networks.values())
        fields["net_tx_bytes"] = sum(int(n.get("tx_bytes", 0)) for n in networks.values())
    io = (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive")
    if io is not None:
        fields["block_read_bytes"] = sum(int(e.get("value", 0)) for e in io if str(e.get("op")).lower() == "read")
        fields["block_write_bytes"] = sum(int(e.get("value", 0)) for e in io if str(e.get("op")).lower() == "write")
    pids = (stats.get("pids_stats") or {}).get("current")
    fields["pids"] = _int(pids)
    return fields


# ----------------------------------------------------------------------------------------------
# Container stats from cgroup files (no Docker API)
# ----------------------------------------------------------------------------------------------

CGROUP_V1_CONTROLLERS = {
    "cpuacct": ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"),
    "memory": ("memory",),
    "blkio": ("blkio",),
    "pids": ("pids",),
}
"""Directories of the v1 hierarchies under the cgroup root (some systems mount cpu and cpuacct together)."""


def container_cgroup_paths(container_id):
    """Where Docker puts a container's cgroup below a hierarchy: cgroupfs driver, then systemd driver."""
    return (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope")


def _read(path):
    with open(path, encoding="ascii") as handle:
        return handle.read()


def parse_flat_keyed(text):
    """``key value`` lines (``memory.stat``, v2 ``cpu.stat``) -> ``{key: int}``; other lines are skipped."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = int(parts[1])
    return out


def parse_blkio_v1(text):
    """v1 ``blkio.*io_service_bytes_recursive`` (``8:0 Read 4096`` ..., ``Total N``) -> Docker's entry list."""
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue  # the closing "Total N" line
        major, _sep, minor = parts[0].partition(":")
        with contextlib.suppress(ValueError):
            entries.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    return entries


def parse_io_stat_v2(text):
    """v2 ``io.stat`` (``8:0 rbytes=.. wbytes=.. rios=..``) -> Docker's entry list (``read``/``write`` bytes)."""
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _sep, minor = parts[0].partition(":")
        values = dict(part.split("=", 1) for part in parts[1:] if "=" in part)
        for key, op in (("rbytes", "read"), ("wbytes", "write")):
            if key in values:
                with contextlib.suppress(ValueError):
                    entries.append({"major": int(major), "minor": int(minor), "op": op, "value": int(values[key])})
    return entries


def parse_proc_stat_cpu_ns(text, clock_ticks):
    """The host's CPU time in ns from ``/proc/stat``, as Docker computes ``system_cpu_usage``.

    The first seven fields of the ``cpu`` line (user, nice, system, idle, iowait, irq, softirq) in
    clock ticks; Docker leaves steal and guest out, and so does this, so ``cpu_percent`` means the same.
    """
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            if len(parts) < 8:
                raise ValueError("/proc/stat: the cpu line has fewer than 7 fields")
            return sum(int(v) for v in parts[1:8]) * 1_000_000_000 // int(clock_ticks)
    raise ValueError("/proc/stat has no cpu line")


def parse_meminfo_total(text):
    """``MemTotal`` of ``/proc/meminfo`` in bytes (Docker's limit of a container without a memory limit)."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            return int(parts[1]) * (1024 if len(parts) > 2 and parts[2] == "kB" else 1)
    raise ValueError("/proc/meminfo has no MemTotal")


class CgroupStats:
    """A container's stats from the cgroup files, in the shape of Docker's stats document.

    ``container_fields`` turns both into the same fields, so the ``container`` measurement means
    exactly what it meant with the Docker API: CPU from ``cpuacct.usage`` (v1) or ``cpu.stat``
    ``usage_usec`` (v2) against the host's ``/proc/stat``; memory ``memory.usage_in_bytes`` /
    ``memory.current`` with ``memory.stat`` (inactive file pages are subtracted as ``docker stats``
    does) and the limit capped at the host's memory; block I/O from ``blkio`` (v1) or ``io.stat``
    (v2); ``pids.current``. The cgroup has no network counters: ``networks`` comes from the host
    ends of the container's links (``links``, found at deploy), read in ``net_root`` - the host's
    ``/sys/class/net`` as a container on the host's network sees it; what the host end receives,
    the container sent.
    """

    def __init__(self, root="/sys/fs/cgroup", proc="/proc", online_cpus=None, clock_ticks=None, net_root=None):
        self.root = root
        self.proc = proc
        self.net_root = net_root or "/sys/class/net"
        self.online_cpus = online_cpus
        self.clock_ticks = clock_ticks or os.sysconf("SC_CLK_TCK")
        self.version = 2 if os.path.exists(os.path.join(root, "cgroup.controllers")) else 1

    def _cpus(self):
        """The host's online CPUs, as Docker's ``online_cpus`` (``sysconf(_SC_NPROCESSORS_ONLN)``)."""
        if self.online_cpus:
            return int(self.online_cpus)
        try:
            return int(os.sysconf("SC_NPROCESSORS_ONLN"))
        except (ValueError, OSError):
            return os.cpu_count() or 1

    def _host(self):
        system = parse_proc_stat_cpu_ns(_read(os.path.join(self.proc, "stat")), self.clock_ticks)
        memory = parse_meminfo_total(_read(os.path.join(self.proc, "meminfo")))
        return system, memory

    def _dir(self, hierarchy, container_id):
        for relative in container_cgroup_paths(container_id):
            path = os.path.join(self.root, hierarchy, relative) if hierarchy else os.path.join(self.root, relative)
            if os.path.isdir(path):
                return path
        return None

    def stats(self, container_id, links=()):
        """Docker-shaped stats of a running container; ``{}`` when it has no cgroup (stopped or removed)."""
        stats = self._stats_v2(container_id) if self.version == 2 else self._stats_v1(container_id)
        networks = self._networks(links) if stats else {}
        if networks:
            stats["networks"] = networks
        return stats

    def _networks(self, links):
        """Docker's ``networks`` shape from the host ends of the container's links (gone ones are left out)."""
        networks = {}
        for link in links:
            directory = os.path.join(self.net_root, link, "statistics")
            try:
                host_rx = int(_read(os.path.join(directory, "rx_bytes")).strip())
                host_tx = int(_read(os.path.join(directory, "tx_bytes")).strip())
            except (OSError, ValueError):
                continue  # the container was re-created: its old link is gone
            networks[link] = {"rx_bytes": host_tx, "tx_bytes": host_rx}
        return networks

    def _stats_v1(self, container_id):
        dirs = {}
        for controller, names in CGROUP_V1_CONTROLLERS.items():
            for name in names:
                found = self._dir(name, container_id)
                if found:
                    dirs[controller] = found
                    break
        if "cpuacct" not in dirs or "memory" not in dirs:
            return {}
        system, host_memory = self._host()
        usage = int(_read(os.path.join(dirs["cpuacct"], "cpuacct.usage")).strip())
        mem_usage = int(_read(os.path.join(dirs["memory"], "memory.usage_in_bytes")).strip())
        limit = int(_read(os.path.join(dirs["memory"], "memory.limit_in_bytes")).strip())
        mem_stats = parse_flat_keyed(_read(os.path.join(dirs["memory"], "memory.stat")))
        io = []
        if "blkio" in dirs:
            # Docker (runc) reads the CFQ/BFQ counters when the kernel keeps them, else the throttle ones.
            for name in (
                "blkio.io_service_bytes_recursive",
                "blkio.bfq.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes_recursive",
            ):
                path = os.path.join(dirs["blkio"], name)
                if os.path.exists(path):
                    io = parse_blkio_v1(_read(path))
                    if io:
                        break
        pids = None
        if "pids" in dirs:
            pids = int(_read(os.path.join(dirs["pids"], "pids.current")).strip())
        return self._document(usage, system, mem_usage, limit, host_memory, mem_stats, io, pids)

    def _stats_v2(self, container_id):
        path = self._dir("", container_id)
        if path is None:
            return {}
        system, host_memory = self._host()
        usage = parse_flat_keyed(_read(os.path.join(path, "cpu.stat")))["usage_usec"] * 1000
        mem_usage = int(_read(os.path.join(path, "memory.current")).strip())
        raw_limit = _read(os.path.join(path, "memory.max")).strip()
        limit = host_memory if raw_limit == "max" else int(raw_limit)
        mem_stats = parse_flat_keyed(_read(os.path.join(path, "memory.stat")))
        io_path = os.path.join(path, "io.stat")
        io = parse_io_stat_v2(_read(io_path)) if os.path.exists(io_path) else []
        pids_path = os.path.join(path, "pids.current")
        pids = int(_read(pids_path).strip()) if os.path.exists(pids_path) else None
        return self._document(usage, system, mem_usage, limit, host_memory, mem_stats, io, pids)

    def _document(self, usage, system, mem_usage, limit, host_memory, mem_stats, io, pids):
        if host_memory and limit > host_memory:  # no limit (v1: a huge number): the host's memory, as Docker says
            limit = host_memory
        return {
            "cpu_stats": {
                "cpu_usage": {"total_usage": usage},
                "system_cpu_usage": system,
                "online_cpus": self._cpus(),
            },
            "memory_stats": {"usage": mem_usage, "limit": limit, "stats": mem_stats},
            "blkio_stats": {"io_service_bytes_recursive": io},
            "pids_stats": {"current": pids} if pids is not None else {},
        }


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


def load_config(path):
    """The configuration document (endpoints.json shape); relative file names resolve from its directory."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the configuration {path}: {exc}") from None
    return parse_config(document, os.path.dirname(os.path.abspath(path)))


def parse_config(document, base_dir="."):
    """Validate and normalise a configuration document; returns ``{nodes, influxdb, containers, ...}``."""
    if not isinstance(document, dict):
        raise ConfigError("the configuration must be a JSON object")
    section = document.get("postgresql")
    if not isinstance(section, dict) or not section:
        raise ConfigError("the configuration has no 'postgresql' nodes")

    def resolve(name):
        return name if not name or os.path.isabs(name) else os.path.join(base_dir, name)

    nodes = []
    for name, spec in sorted(section.items()):
        if not isinstance(spec, dict):
            raise ConfigError(f"node {name!r}: expected an object")
        kind = spec.get("kind", "subscriber")
        if kind not in ("publisher", "subscriber"):
            raise ConfigError(f"node {name!r}: kind must be publisher or subscriber, not {kind!r}")
        missing = [key for key in ("host", "dbname") if not spec.get(key)]
        if missing:
            raise ConfigError(f"node {name!r}: missing {', '.join(missing)}")
        if "password" in spec:
            raise ConfigError(f"node {name!r}: give a password_file, never a password in the configuration")
        try:
            port = int(spec.get("port", 5432))
        except (TypeError, ValueError):
            raise ConfigError(f"node {name!r}: port must be a number") from None
        nodes.append(
            {
                "name": name,
                "kind": kind,
                "host": spec["host"],
                "port": port,
                "dbname": spec["dbname"],
                "user": spec.get("user", "postgres"),
                "password_file": resolve(spec.get("password_file")),
                "sslmode": spec.get("sslmode"),
                "sslrootcert": resolve(spec.get("sslrootcert")),
            }
        )
    docker = document.get("docker") or {}
    containers = docker.get("containers") or []
    if not isinstance(containers, list) or not all(isinstance(c, str) and c for c in containers):
        raise ConfigError("docker.containers must be a list of container names")
    cgroup = docker.get("cgroup")
    if cgroup is not None:
        if not isinstance(cgroup, dict) or not isinstance(cgroup.get("ids"), dict):
            raise ConfigError(
                "docker.cgroup must be an object with 'ids' (container name -> id) and optional 'root', "
                "'links' (container name -> host interfaces) and 'net_root'"
            )
        missing = [c for c in containers if not cgroup["ids"].get(c)]
        if missing:
            raise ConfigError(f"docker.cgroup.ids has no id for {', '.join(missing)}")
        links = cgroup.get("links") or {}
        if not isinstance(links, dict) or not all(
            isinstance(v, list) and all(isinstance(i, str) and i and "/" not in i for i in v) for v in links.values()
        ):
            raise ConfigError("docker.cgroup.links must map container names to lists of interface names")
        cgroup = {
            "root": cgroup.get("root") or "/sys/fs/cgroup",
            "ids": dict(cgroup["ids"]),
            "links": {name: list(v) for name, v in links.items()},
            "net_root": cgroup.get("net_root") or "/sys/class/net",
        }
    sampler = document.get("sampler") or {}
    unknown = set(sampler) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown sampler setting(s): {', '.join(sorted(unknown))}")
    influxdb = document.get("influxdb") or None
    if influxdb is not None:
        influxdb = dict(influxdb)
        for key in ("password_file", "token_file"):
            if influxdb.get(key):
                influxdb[key] = resolve(influxdb[key])
    return {
        "nodes": nodes,
        "influxdb": influxdb,
        "containers": list(containers),
        "docker_socket": docker.get("socket", DOCKER_SOCKET),
        "cgroup": cgroup,
        "settings": {**DEFAULTS, **sampler},
    }


def _read_password(path):
    if not path:
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


# ----------------------------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------------------------


class Ticker:
    """Wall-clock aligned ticks shared by the threads; ``wait()`` returns the tick (epoch seconds) or None on stop."""

    def __init__(self, interval, stop):
        self.interval = float(interval)
        self.stop = stop

    def wait(self, offset=0.0):
        tick = next_tick(time.time() - offset, self.interval)
        if self.stop.wait(max(0.0, tick + offset - time.time())):
            return None
        return tick


def query_calls(conn, node_name, beat=False):
    """Every query a round can run on one node, as calls without arguments (``benchmarks/sampler_overhead.py``
    times them one by one), and the pipelined round of the every-tick ones (without the database size).
    ``beat``: the publisher's heartbeat upsert (it writes), else the subscriber's read."""
    major = conn.info.server_version // 10000
    queries = {
        "round (pipelined)": lambda: _metrics.collect_round(conn, major, size=False),
        "locks": lambda: _metrics.collect_locks(conn, major),
        "activity": lambda: _metrics.collect_activity(conn, major),
        "database": lambda: _metrics.collect_database(conn, major, size=False),
        "database_size": lambda: _metrics.collect_database(conn, major, size=True),
        "checkpoints": lambda: _metrics.collect_checkpoints(conn, major),
        "senders": lambda: _metrics.collect_senders(conn, major),
        "slots": lambda: _slots.collect_slots(conn, major),
        "subscriptions": lambda: _subscriptions.collect_subscriptions(conn, major, conninfo=False),
        "statements_schema": lambda: _metrics.statements_schema(conn),
        "heartbeat_present": lambda: _metrics.heartbeat_present(conn),
    }
    schema = _metrics.statements_schema(conn)
    if schema:
        queries["statements"] = lambda: _metrics.collect_statements(conn, major, schema)
    if _metrics.heartbeat_present(conn):
        if beat:
            queries["heartbeat_beat"] = lambda: _metrics.heartbeat_beat(conn, node_name)
        else:
            queries["heartbeat"] = lambda: _metrics.collect_heartbeat(conn, major)
    return queries


class Turn:
    """The nodes' rounds of a tick take turns: one at a time, each waiting at most ``wait`` seconds for the one
    before it (a node whose query hangs holds the others back no longer than that).

    Rounds running side by side in one process on a busy host wait for each other's CPU time and the GIL:
    taking turns keeps each round as short as it would be alone, the price being that a node is read a few
    milliseconds after the one before it (the points keep the tick's timestamp).
    """

    def __init__(self, wait):
        self.wait = float(wait)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def take(self):
        """Hold the turn for a block (or go ahead after ``wait``); yields the seconds waited."""
        start = time.perf_counter()
        held = self._lock.acquire(timeout=self.wait)
        try:
            yield time.perf_counter() - start
        finally:
            if held:
                self._lock.release()


class NodeSampler(threading.Thread):
    """One node: a persistent connection, reconnected with backoff; one round per tick."""

    def __init__(self, node, settings, sink, errors, ticker, beats=None, turn=None):
        super().__init__(name=f"node-{node['name']}", daemon=True)
        self.node = node
        self.beats = BeatLog() if beats is None else beats  # shared by all nodes: publishers write, subscribers read
        self.turn = Turn(0.0) if turn is None else turn  # shared by all nodes: their rounds one at a time
        self.settings = settings
        self.sink = sink
        self.errors = errors
        self.ticker = ticker
        self.backoff = Backoff(settings["backoff_initial"], settings["backoff_max"])
        self.retry_at = 0.0
        self.conn = None
        self.major = None
        self.statements_schema = None
        self.statements = None  # the round's statements piece, for statements_schema
        self.checked = False  # whether this connection's existence checks have answered
        self.statements_checked = 0.0
        self.heartbeat = False
        self.heartbeat_checked = 0.0
        self.size_checked = 0.0
        self.size_bytes = None
        self.rounds = 0
        self.round_seconds = collections.deque(maxlen=3600)

    def connect(self):
        node = self.node
        timeout_ms = int(self.settings["statement_timeout_ms"]) or int(
            min(5000, max(500, self.settings["interval"] * 1000))
        )
        params = {
            "login_host": node["host"],
            "login_port": node["port"],
            "login_db": node["dbname"],
            "login_user": node["user"],
            "login_password": _read_password(node["password_file"]) or None,
            "ssl_mode": node.get("sslmode") or None,
            "ssl_rootcert": node.get("sslrootcert") or None,
            "connect_timeout": int(self.settings["connect_timeout"]),
        }
        conn = connection.connect(params, autocommit=True, application_name=APPLICATION_NAME)
        # The same few statements run every tick for the connection's life: prepared at once (psycopg's
        # default waits for the 5th execution), so the server parses and plans each of them once.
        conn.prepare_threshold = 0
        conn.execute(
            "SELECT set_config('jit', 'off', false), set_config('statement_timeout', %s, false),"
            " set_config('lock_timeout', %s, false), set_config('synchronous_commit', 'off', false)",
            (str(timeout_ms), str(timeout_ms)),
        )
        self.conn = conn
        self.major = conn.info.server_version // 10000
        self.checked = False
        self.statements_checked = 0.0
        self.heartbeat_checked = 0.0
        self.size_checked = 0.0

    def close(self):
        if self.conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection must not stop the thread
                self.conn.close()
        self.conn = None

    def collect(self, now):
        conn, major, name = self.conn, self.major, self.node["name"]
        # Whether pg_stat_statements and the heartbeat table exist, rechecked on their cadence: alone before
        # the first round of a connection, later inside the round's pipeline, answering for the next round.
        checks = {}
        if now - self.statements_checked >= STATEMENTS_RECHECK_SECONDS:
            self.statements_checked = now
            checks["statements_schema"] = _metrics.STATEMENTS_SCHEMA_PIECE
        if now - self.heartbeat_checked >= HEARTBEAT_RECHECK_SECONDS:
            self.heartbeat_checked = now
            checks["heartbeat_present"] = _metrics.HEARTBEAT_PRESENT_PIECE
        if not self.checked:
            self._checked({check: _metrics.run_piece(conn, piece) for check, piece in checks.items()})
            checks = {}
        # Optional pieces: their failure (pg_stat_statements not preloaded, no privilege on the heartbeat
        # table) is counted and retried after the next check, the rest of the round is kept.
        optional = {}
        if self.statements_schema:
            optional["statements"] = self.statements
        if self.heartbeat:
            publisher = self.node["kind"] == "publisher"
            optional["heartbeat"] = _metrics.heartbeat_beat_piece(name) if publisher else _metrics.HEARTBEAT_READ_PIECE
        # Every query of the tick goes in one pipeline: one round trip (see _catalog.fetch_pipelined).
        measure_size = now - self.size_checked >= DATABASE_SIZE_SECONDS
        try:
            facts = _metrics.collect_round(conn, major, size=measure_size, extra={**optional, **checks})
            answered = time.monotonic()
            pieces = {piece: facts.pop(piece) for piece in optional}
            self._checked({check: facts.pop(check) for check in checks})
        except Exception:
            if not optional and not checks:
                raise
            self._raise_if_broken()
            # The pipeline is one transaction: a failing piece undid it all (a beat too). The tick's queries
            # again, then the rest one by one, so that a failing piece costs only its own measurement.
            facts = _metrics.collect_round(conn, major, size=measure_size)
            self._checked({check: _metrics.run_piece(conn, piece) for check, piece in checks.items()})
            pieces = {}
            for piece, query in optional.items():
                try:
                    pieces[piece] = _metrics.run_piece(conn, query)
                except Exception as exc:
                    self._piece_failed(piece, exc)
            answered = time.monotonic()
        if measure_size:
            self.size_checked = now
            self.size_bytes = facts["database"].get("size_bytes")
        elif facts["database"]:
            facts["database"]["size_bytes"] = self.size_bytes
        if "statements" in pieces:
            facts["statements"] = pieces["statements"]
            self.errors.ok(f"{name}:statements")
        if "heartbeat" in pieces:
            if self.node["kind"] == "publisher":
                # Recorded when the answer came: the beat is committed (the pipeline's end) by then.
                self.beats.record(name, pieces["heartbeat"], answered)
            else:
                # `answered` follows the read: the seq it saw was current before.
                facts["heartbeat"] = [heartbeat_lag(row, name, self.beats, answered) for row in pieces["heartbeat"]]
            self.errors.ok(f"{name}:heartbeat")
        return facts

    def _checked(self, answers):
        """Take the answers of the existence checks (``statements_schema``, ``heartbeat_present``)."""
        if "statements_schema" in answers:
            schema = answers["statements_schema"]
            self.statements_schema = schema
            self.statements = _metrics.statements_piece(self.conn, schema) if schema else None
        if "heartbeat_present" in answers:
            self.heartbeat = answers["heartbeat_present"]
        self.checked = True

    def _piece_failed(self, piece, exc):
        """An optional piece failed on its own: off until its next check, counted; the round goes on."""
        name = self.node["name"]
        if piece == "statements":
            self.statements_schema = None
        else:
            self.heartbeat = False
        self.errors.record(name, piece, exc, source=f"{name}:{piece}")
        self._raise_if_broken()

    def _raise_if_broken(self):
        if self.conn is None or self.conn.closed or self.conn.broken:
            raise ConnectionError("the connection broke")

    def round(self, tick):
        """One sampling round at ``tick``; never raises."""
        name = self.node["name"]
        now = time.time()
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.close()
            if now < self.retry_at:
                return
            try:
                self.connect()
            except Exception as exc:
                self.close()
                self.retry_at = time.time() + self.backoff.fail()
                self.errors.record(name, "connect", exc)
                return
        try:
            with self.turn.take() as waited:
                start = time.perf_counter()
                facts = self.collect(now)
                elapsed = time.perf_counter() - start
        except Exception as exc:
            broken = self.conn is None or self.conn.closed or self.conn.broken
            self.errors.record(name, "connection_lost" if broken else "query", exc)
            if broken:
                self.close()
                self.retry_at = time.time() + self.backoff.fail()
            return
        self.backoff.reset()
        self.errors.ok(name)
        ts = round(tick * 1e9)
        lines = node_points(name, facts, ts)
        fields = {"duration_ms": elapsed * 1000.0, "turn_wait_ms": waited * 1000.0, "points": len(lines)}
        lines += _point("sampler_round", {"node": name}, fields, ts)
        self.rounds += 1
        self.round_seconds.append(elapsed)
        self.sink.add(lines)

    def run(self):
        while True:
            tick = self.ticker.wait()
            if tick is None:
                break
            try:
                self.round(tick)
            except Exception as exc:
                self.errors.record(self.node["name"], "internal", exc)
        self.close()


def _docker_get(socket_path, path, timeout=5.0):
    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(socket_path)

    conn = UnixConnection("localhost", timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"Docker answered {response.status} to {path}: {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


class ContainerSampler(threading.Thread):
    """Stats of every configured container each tick: from its cgroup files, or one-shot from the Docker API."""

    def __init__(self, containers, socket_path, sink, errors, ticker, node_name, cgroup=None):
        super().__init__(name="containers", daemon=True)
        self.containers = containers
        self.socket_path = socket_path
        # cgroup: {"root", "ids"} - read the files, never the Docker socket
        self.cgroup = CgroupStats(cgroup["root"], net_root=cgroup.get("net_root")) if cgroup else None
        self.ids = dict(cgroup["ids"]) if cgroup else {}
        self.links = dict(cgroup.get("links") or {}) if cgroup else {}
        self.sink = sink
        self.errors = errors
        self.ticker = ticker
        self.node_name = node_name
        self.previous = {}
        self.backoff = Backoff(1.0, 30.0)
        self.retry_at = 0.0

    def read(self, name):
        if self.cgroup is not None:
            return self.cgroup.stats(self.ids[name], self.links.get(name, ()))
        return _docker_get(self.socket_path, f"/containers/{name}/stats?stream=false&one-shot=true")

    def sample(self, name, ts):
        try:
            stats = self.read(name)
        except (OSError, ValueError, KeyError, http.client.HTTPException) as exc:
            self.errors.record(name, "docker", exc, source=f"container:{name}")
            return []
        fields = container_fields(stats, self.previous.get(name))
        self.previous[name] = stats
        self.errors.ok(f"container:{name}")
        if fields is None:
            return _point("container", {"node": name, "container": name}, {"running": 0}, ts)
        fields["running"] = 1
        return _point("container", {"node": name, "container": name}, fields, ts)

    def run(self):
        while True:
            tick = self.ticker.wait()
            if tick is None:
                break
            if self.cgroup is None and not os.path.exists(self.socket_path):
                if time.time() >= self.retry_at:
                    self.retry_at = time.time() + self.backoff.fail()
                    self.errors.record(self.node_name, "docker", f"no Docker socket at {self.socket_path}")
                continue
            self.backoff.reset()
            ts = round(tick * 1e9)
            lines = []
            for name in self.containers:
                lines += self.sample(name, ts)
            self.sink.add(lines)


class Sampler:
    """The threads, the buffer and the writer loop (run in the calling thread)."""

    def __init__(self, config, client=None, dry_run=False, out=None):
        self.config = config
        self.settings = config["settings"]
        self.client = client
        self.dry_run = dry_run
        self.out = out or sys.stdout
        self.stop = threading.Event()
        self.buffer = PointBuffer(int(self.settings["buffer_points"]))
        self.errors = ErrorCounter()
        self.ticker = Ticker(float(self.settings["interval"]), self.stop)
        self.beats = BeatLog()
        self.turn = Turn(self.ticker.interval * TURN_WAIT_FRACTION)
        self.nodes = [
            NodeSampler(n, self.settings, self.buffer, self.errors, self.ticker, self.beats, self.turn)
            for n in config["nodes"]
        ]
        self.containers = None
        if config["containers"]:
            self.containers = ContainerSampler(
                config["containers"],
                config["docker_socket"],
                self.buffer,
                self.errors,
                self.ticker,
                self.settings["node_name"],
                cgroup=config.get("cgroup"),
            )
        self.backoff = Backoff(self.settings["backoff_initial"], self.settings["backoff_max"])
        self.retry_at = 0.0
        self.written = 0

    def status_points(self, ts):
        lines = []
        for (node, kind), count in sorted(self.errors.counts().items()):
            lines += _point("sampler_errors", {"node": node, "kind": kind}, {"count": count}, ts)
        fields = {
            "buffered_points": len(self.buffer),
            "dropped_points": self.buffer.dropped,
            "written_points": self.written,
        }
        lines += _point("sampler_errors", {"node": self.settings["node_name"], "kind": "buffer"}, fields, ts)
        return lines

    def flush(self, final=False):
        """Write the buffer in batches; on failure keep the points (bounded) and back off."""
        if not final and time.time() < self.retry_at:
            return
        batch_size = int(self.settings["batch_size"])
        while True:
            batch = self.buffer.take(batch_size)
            if not batch:
                return
            if self.dry_run:
                self.out.write("\n".join(batch) + "\n")
                self.out.flush()
                self.written += len(batch)
                continue
            try:
                self.client.write(batch)
            except influx.InfluxError as exc:
                if not exc.retryable:  # the data's fault: retrying cannot help, drop this batch
                    self.errors.record(self.settings["node_name"], "influxdb_rejected", exc)
                    continue
                self.buffer.put_back(batch)
                self.retry_at = time.time() + self.backoff.fail()
                self.errors.record(self.settings["node_name"], "influxdb", exc)
                return
            self.written += len(batch)
            self.backoff.reset()
            self.errors.ok(self.settings["node_name"], "InfluxDB reachable again")

    def run(self, duration=None):
        deadline = time.time() + duration if duration else None
        for thread in self.nodes:
            thread.start()
        if self.containers:
            self.containers.start()
        LOG.info(
            "sampling %d node(s) and %d container(s) every %ss into %s",
            len(self.nodes),
            len(self.config["containers"]),
            self.settings["interval"],
            "stdout" if self.dry_run else self.client,
        )
        while not self.stop.is_set():
            # Write half an interval after each tick: the rounds of the tick are in the buffer by then.
            tick = self.ticker.wait(offset=min(0.5, self.ticker.interval / 2))
            if tick is None:
                break
            self.buffer.add(self.status_points(round(tick * 1e9)))
            self.flush()
            if deadline and time.time() >= deadline:
                self.stop.set()
        for thread in self.nodes:
            thread.join(timeout=10)
        if self.containers:
            self.containers.join(timeout=10)
        self.buffer.add(self.status_points(round(time.time() * 1e9)))
        self.flush(final=True)
        LOG.info(
            "stopped: %d points written, %d dropped, %d still buffered",
            self.written,
            self.buffer.dropped,
            len(self.buffer),
        )


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def build_parser():
    parser = argparse.ArgumentParser(
        prog="inventium-sampler", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--endpoints", help="the lab's .lab/endpoints.json")
    source.add_argument("--config", help="a configuration file of the same shape (real hosts)")
    parser.add_argument("--interval", type=float, help="seconds between rounds (default 1)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: run until signalled)")
    parser.add_argument("--buffer-points", type=int, help="points kept while InfluxDB is unreachable (default 100000)")
    parser.add_argument("--batch-size", type=int, help="points per write request (default 5000)")
    parser.add_argument("--backoff-max", type=float, help="longest wait between reconnection attempts (default 30)")
    parser.add_argument("--statement-timeout-ms", type=int, help="statement_timeout of the sampler's sessions")
    parser.add_argument("--node-name", help="the 'node' tag of the sampler's own points (default 'sampler')")
    parser.add_argument("--no-containers", action="store_true", help="do not read Docker container stats")
    parser.add_argument("--dry-run", action="store_true", help="print line protocol to stdout instead of writing it")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def settings_from_args(config, args):
    settings = config["settings"]
    for key in ("interval", "buffer_points", "batch_size", "backoff_max", "statement_timeout_ms", "node_name"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    if float(settings["interval"]) <= 0:
        raise ConfigError("the interval must be positive")
    if args.no_containers:
        config["containers"] = []
    return config


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        config = settings_from_args(load_config(args.endpoints or args.config), args)
        client = None
        if not args.dry_run:
            if not config["influxdb"]:
                raise ConfigError("the configuration has no 'influxdb' section (use --dry-run to print the points)")
            client = influx.client_from_endpoints(
                {"influxdb": config["influxdb"]}, timeout=float(config["settings"]["influx_timeout"])
            )
    except (ConfigError, ValueError, KeyError, OSError) as exc:
        LOG.error("configuration: %s", redact(str(exc)))
        return 2
    sampler = Sampler(config, client, dry_run=args.dry_run)

    def stop(signum, _frame):
        LOG.info("signal %d: stopping after a final flush", signum)
        sampler.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sampler.run(args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
