# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The experiments' measurement catalog: every measure defined ONCE, with its metadata and its source.

``CATALOG`` maps a measure name to ``{name, unit, per_node, better, description, source}``:

- ``unit``: ``s``, ``bytes``, ``count``, ``tx/s``, ``rows/s`` or ``ratio``;
- ``per_node``: the measure has one value per subscriber node (a dict ``{node: number|None}``
  in the results) or one value for the run;
- ``better``: ``lower``, ``higher`` or ``none`` (what the generated answer calls "best");
- ``source``: the exact SQL / API the number comes from (the README's catalog table shows it).

The code that takes the numbers lives in ``_experiment_steps.py`` (the probe and the steps) and
uses the SQL constants defined here, so the documented source and the executed SQL are the same
text. Nothing here depends on Ansible.
"""

from __future__ import annotations

UNITS = ("s", "bytes", "count", "tx/s", "rows/s", "ratio")
BETTER = ("lower", "higher", "none")

PROBE_INTERVAL = 0.5
"""Seconds between two probe samples (heartbeat beat, lag and Docker stats)."""
MARKER_POLL_INTERVAL = 0.01
"""Seconds between two polls of a node for the marker row (commit_visible_seconds)."""

# --- SQL executed by the probe and the steps (the documented sources) ------------------------------

MARKER_INSERT = "INSERT INTO experiment.marker (id, run) VALUES (%s, %s)"
"""Run inside the workload's last transaction on the publisher (same COMMIT as the last rows)."""
MARKER_SEEN = "SELECT 1 FROM experiment.marker WHERE id = %s"
"""Polled on each node every 10 ms from the COMMIT's return."""

HEARTBEAT_INSERT = "INSERT INTO experiment.heartbeat (id, seq, beat_at) VALUES (%s, %s, to_timestamp(%s))"
"""Probe on the publisher, autocommit, every 0.5 s (id = seq = beat number, beat_at = the probe's clock)."""
HEARTBEAT_SEEN = "SELECT coalesce(max(id), 0) AS id FROM experiment.heartbeat"
"""Probe on each node: the newest beat seen (beats are written in id order, one transaction each)."""

SENDER_LAG = (
    "SELECT r.pid, r.application_name, pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.replay_lsn)"
    "::bigint AS replay_lag_bytes, r.replay_lsn::text AS replay_lsn FROM pg_catalog.pg_stat_replication r"
    " WHERE r.application_name = ANY(%s)"
)
"""Publisher: the walsenders of a node (application_name = subscription name, PostgreSQL's default)."""

SLOT_RETAINED = (
    "SELECT slot_name::text AS slot_name, wal_status, active,"
    " pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::bigint AS retained_bytes"
    " FROM pg_catalog.pg_replication_slots WHERE slot_name = ANY(%s)"
)
"""Publisher: retained WAL and ``wal_status`` of a node's slots."""

CURRENT_LSN = "SELECT pg_catalog.pg_current_wal_lsn()::text AS lsn"
CAUGHT_UP = (
    "SELECT count(*) FILTER (WHERE replay_lsn >= %s::pg_lsn) AS done, count(*) AS senders"
    " FROM pg_catalog.pg_stat_replication WHERE application_name = ANY(%s)"
)
"""Publisher: whether the node's walsender(s) have replayed up to the LSN taken at the workload's end."""

SLOT_STATS = (
    "SELECT coalesce(sum(spill_bytes), 0)::bigint AS spill_bytes, coalesce(sum(spill_txns), 0)::bigint AS spill_count,"
    " coalesce(sum(stream_bytes), 0)::bigint AS stream_bytes, coalesce(sum(stream_txns), 0)::bigint AS stream_count"
    " FROM pg_catalog.pg_stat_replication_slots WHERE slot_name = ANY(%s)"
)
"""Publisher (PostgreSQL 14+): cumulative decoding statistics of a node's slots; the run takes deltas."""

SUBSCRIPTION_STATS = (
    "SELECT coalesce(sum(apply_error_count), 0)::bigint AS apply_error_count,"
    " coalesce(sum(sync_error_count), 0)::bigint AS sync_error_count"
    " FROM pg_catalog.pg_stat_subscription_stats WHERE subname = ANY(%s)"
)
"""Node (PostgreSQL 15+): cumulative apply/sync error counts of the node's subscription(s); deltas."""

SUBSCRIPTION_READY = (
    "SELECT count(*) FILTER (WHERE r.srsubstate = 'r') AS ready, count(*) AS tables"
    " FROM pg_catalog.pg_subscription_rel r JOIN pg_catalog.pg_subscription s ON s.oid = r.srsubid"
    " WHERE s.subname = %s"
)
"""Node: tables of a subscription and how many are ``ready`` (``srsubstate = 'r'``)."""

WALSENDER_STAT = "/proc/<pid>/stat fields 14 (utime) + 15 (stime) / SC_CLK_TCK"


def _entry(name, unit, per_node, better, description, source):
    if unit not in UNITS or better not in BETTER:
        raise ValueError(f"{name}: bad unit {unit!r} or better {better!r}")
    return name, {
        "name": name,
        "unit": unit,
        "per_node": per_node,
        "better": better,
        "description": description,
        "source": source,
    }


CATALOG = dict(
    [
        _entry(
            "commit_visible_seconds",
            "s",
            True,
            "lower",
            "Time from the COMMIT of the workload's last transaction on the publisher until that transaction is "
            "visible on the node.",
            "The last workload transaction also runs `" + MARKER_INSERT + "` (experiment.marker is published to "
            "every node; after pgbench and hum, whose transactions are not the run's, a transaction of its own right "
            "after them); client clock when COMMIT returns on the publisher -> first poll (every 10 ms) of `"
            + MARKER_SEEN
            + "` on the node that returns the row.",
        ),
        _entry(
            "catchup_seconds",
            "s",
            True,
            "lower",
            "Time from the workload's end until the node's walsender has replayed everything written until then.",
            "`" + CURRENT_LSN + "` on the publisher at the workload's end, then every 0.1 s `" + CAUGHT_UP + "` "
            "(pg_stat_replication.replay_lsn of the node's walsender) until it reaches that LSN.",
        ),
        _entry(
            "heartbeat_lag_median_seconds",
            "s",
            True,
            "lower",
            "Median over the run of the heartbeat lag: age of the oldest beat the node has not seen yet (0 when "
            "caught up).",
            "Probe every 0.5 s: `" + HEARTBEAT_INSERT + "` on the publisher, `" + HEARTBEAT_SEEN + "` on the node; "
            "lag = probe clock now - beat_at of the oldest beat with id > the node's max id (0 when none).",
        ),
        _entry(
            "heartbeat_lag_max_seconds",
            "s",
            True,
            "lower",
            "Maximum over the run of the heartbeat lag (see heartbeat_lag_median_seconds).",
            "Same samples as heartbeat_lag_median_seconds; the maximum.",
        ),
        _entry(
            "byte_lag_max_bytes",
            "bytes",
            True,
            "lower",
            "Maximum over the run of the WAL distance between the publisher's insert position and what the node "
            "has replayed.",
            "Probe every 0.5 s on the publisher: `" + SENDER_LAG + "`; the maximum of replay_lag_bytes (sum over "
            "the node's walsenders).",
        ),
        _entry(
            "retained_wal_peak_bytes",
            "bytes",
            True,
            "lower",
            "Peak WAL kept on the publisher for the node's slot(s) during the run.",
            "Probe every 0.5 s on the publisher: `" + SLOT_RETAINED + "`; the maximum of retained_bytes "
            "(pg_current_wal_lsn() - restart_lsn, summed over the node's slots).",
        ),
        _entry(
            "spill_bytes",
            "bytes",
            True,
            "lower",
            "Bytes of decoded transactions spilled to disk by the node's walsender(s) during the run.",
            "Delta over the run of spill_bytes in `" + SLOT_STATS + "` (PostgreSQL 14+).",
        ),
        _entry(
            "spill_count",
            "count",
            True,
            "lower",
            "Transactions spilled to disk during the run.",
            "Delta over the run of spill_txns in `" + SLOT_STATS + "` (PostgreSQL 14+).",
        ),
        _entry(
            "stream_bytes",
            "bytes",
            True,
            "none",
            "Bytes of in-progress transactions streamed to the node during the run.",
            "Delta over the run of stream_bytes in `" + SLOT_STATS + "` (PostgreSQL 14+).",
        ),
        _entry(
            "stream_count",
            "count",
            True,
            "none",
            "Transactions streamed in progress to the node during the run.",
            "Delta over the run of stream_txns in `" + SLOT_STATS + "` (PostgreSQL 14+).",
        ),
        _entry(
            "publisher_tps",
            "tx/s",
            False,
            "higher",
            "Transactions per second the workload achieved on the publisher.",
            "Transactions committed by the workload steps ÷ their summed duration (client clock); for pgbench "
            "steps pgbench's own `tps = ... (without initial connection time)`.",
        ),
        _entry(
            "publisher_rows_per_second",
            "rows/s",
            False,
            "higher",
            "Rows the workload wrote per second on the publisher.",
            "Rows inserted/updated/deleted by the writing steps ÷ their summed duration (client clock).",
        ),
        _entry(
            "walsender_cpu_seconds",
            "s",
            True,
            "lower",
            "CPU time (user + system) of the node's walsender process(es) on the publisher during the run.",
            "Walsender pids from `" + SENDER_LAG + "`; delta of " + WALSENDER_STAT + " between the run's start "
            "and end (a walsender that appears mid-run counts from its first sample).",
        ),
        _entry(
            "subscriber_cpu_seconds",
            "s",
            True,
            "lower",
            "CPU time of the node's container during the run.",
            "Docker SDK `container.stats(stream=False)`: delta of cpu_stats.cpu_usage.total_usage (ns) / 1e9 "
            "between the first and last probe sample.",
        ),
        _entry(
            "subscriber_memory_peak_bytes",
            "bytes",
            True,
            "lower",
            "Peak memory use of the node's container during the run.",
            "Docker SDK `container.stats(stream=False)`: maximum of memory_stats.usage over the probe samples.",
        ),
        _entry(
            "apply_error_count",
            "count",
            True,
            "lower",
            "Apply errors of the node's subscription(s) during the run.",
            "Delta over the run of apply_error_count in `" + SUBSCRIPTION_STATS + "` on the node (PostgreSQL 15+).",
        ),
        _entry(
            "sync_error_count",
            "count",
            True,
            "lower",
            "Table synchronisation errors of the node's subscription(s) during the run.",
            "Delta over the run of sync_error_count in `" + SUBSCRIPTION_STATS + "` on the node (PostgreSQL 15+).",
        ),
        _entry(
            "initial_sync_seconds",
            "s",
            True,
            "lower",
            "Time for a new subscription to copy its tables: CREATE SUBSCRIPTION until every table is ready.",
            "Client clock from CREATE SUBSCRIPTION of the step's own subscription on the node until `"
            + SUBSCRIPTION_READY
            + "` returns ready = tables (polled every 0.1 s).",
        ),
        _entry(
            "baseline_copy_seconds",
            "s",
            True,
            "lower",
            "The same tables copied by a plain COPY | COPY (no replication), for comparison with initial_sync_seconds.",
            "Client clock over, for each table in turn: `COPY (SELECT * FROM t) TO STDOUT` on the publisher "
            "streamed into `COPY t FROM STDIN` on the node (psycopg copy, text format), then COMMIT.",
        ),
        _entry(
            "apply_rows_per_second",
            "rows/s",
            True,
            "higher",
            "Rows of a backlog the node applied per second after its subscription was resumed.",
            "backlog step: rows written while the subscription was disabled ÷ (client clock from ALTER "
            "SUBSCRIPTION ... ENABLE until `" + CAUGHT_UP + "` reaches the LSN taken after the writes); "
            "update_delete step: rows changed (updated + deleted) ÷ (client clock from the first UPDATE on the "
            "publisher until the same query reaches the LSN after the last DELETE); pause step: rows the background "
            "writer committed during the pause ÷ (ENABLE until caught up to the LSN at resume).",
        ),
        _entry(
            "catchup_rate_ratio",
            "ratio",
            True,
            "higher",
            "How much faster the node drained its backlog than the publisher wrote it (> 1: it catches up).",
            "apply_rows_per_second ÷ publisher_rows_per_second of the same run; for a pause step: rows written "
            "during the pause ÷ (resume until caught up) ÷ the background writer's rows/s.",
        ),
        _entry(
            "slot_lost_seconds",
            "s",
            True,
            "none",
            "Time from the start of the write burst until the node's slot is invalidated (wal_status = 'lost').",
            "Client clock from the slot_limit step's first write until the probe/step sees wal_status = 'lost' in `"
            + SLOT_RETAINED
            + "`; null when the slot survived.",
        ),
        _entry(
            "retained_wal_at_resume_bytes",
            "bytes",
            True,
            "lower",
            "WAL retained for the node's slot at the moment its subscription is re-enabled (pause/backlog steps).",
            "retained_bytes of `" + SLOT_RETAINED + "` read just before ALTER SUBSCRIPTION ... ENABLE.",
        ),
        _entry(
            "resume_catchup_seconds",
            "s",
            True,
            "lower",
            "Time from re-enabling the node's subscription (pause/backlog steps) until it replayed everything "
            "written before.",
            "`" + CURRENT_LSN + "` on the publisher just before ALTER SUBSCRIPTION ... ENABLE; client clock from the "
            "ENABLE until `" + CAUGHT_UP + "` reaches that LSN (polled every 0.1 s).",
        ),
        _entry(
            "workload_seconds",
            "s",
            False,
            "none",
            "Duration of the run's writing steps (client clock).",
            "Sum over the workload steps that write of (end - start), client clock (time.monotonic).",
        ),
    ]
)
"""Every measure the experiments can ask for, by name."""

MEASURES = tuple(CATALOG)


def describe(name):
    """The catalog entry of ``name`` (KeyError names the known measures)."""
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown measure {name!r}; known: {', '.join(MEASURES)}") from None
