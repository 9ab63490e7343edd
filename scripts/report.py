# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""`make report`: PNG plots and a markdown page of the lab's last N minutes, from InfluxDB.

For machines without Grafana and for experiment write-ups. Reads the ``influxdb`` section of
``.lab/endpoints.json`` (the metrics the sampler writes; names in roles/sampler/README.md) and
writes into ``--out`` (default ``.lab/report``):

- ``lag.png``          replication lag per subscription: bytes (publisher WAL position minus
                       replay position, pg_stat_replication) and seconds (heartbeat, end to end)
- ``retained_wal.png`` WAL retained per replication slot
- ``locks.png``        locks by mode, one panel per node (the seed's Grafana panel)
- ``tps.png``          transactions per second per node (derivative of xact_commit)
- ``failover_slots.png`` failover slots (PostgreSQL 17+): synced flag and inactive seconds per node and slot
- ``conflicts.png``    conflicts per type (PostgreSQL 18+ subscribers, cumulative), one panel per type
- ``report.md``        the page: time range, latest values, the images

The last two exist only when the lab has such servers; without, their sections say "No data".

Usage: scripts/report.py [--endpoints .lab/endpoints.json] [--minutes 15] [--out .lab/report]
Exit status 0 when the report was written (plots without data say so), 2 when InfluxDB cannot
be reached or endpoints.json has no influxdb section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.paths import use_checkout  # noqa: E402

use_checkout()  # tests/support: the collection, tests/ and tests/integration/ on sys.path

from ansible_collections.inventium.logical_replication.plugins.module_utils import _influx as influx  # noqa: E402
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import CONFLICT_TYPES  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "inventium-matplotlib"))

# Lock modes the seed's Grafana panel showed (others are plotted too when they are non-zero).
SEED_LOCK_MODES = ("AccessShareLock", "ExclusiveLock", "RowExclusiveLock", "ShareLock", "ShareUpdateExclusiveLock")
FIGURE_SIZE = (11, 4.2)
DPI = 110
IMAGES = ("lag", "retained_wal", "locks", "tps", "failover_slots", "conflicts")
"""The plots a report can have (``<name>.png``); a new report first removes the old ones."""


def bucket_seconds(minutes: float) -> int:
    """GROUP BY time() bucket: about 300 points per line, at least the sampler's 1 s."""
    return max(1, round(minutes * 60 / 300))


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def series(
    rows: list[dict], tag: str | tuple[str, ...], field: str
) -> dict[str, tuple[list[dt.datetime], list[float]]]:
    """Rows of a GROUP BY tag query -> {tag value: (times, values)} without nulls (several tags: ``a/b``)."""
    out: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    tags = (tag,) if isinstance(tag, str) else tag
    for row in rows:
        value = row.get(field)
        if value is None:
            continue
        times, values = out["/".join(str(row.get(t, "")) for t in tags)]
        times.append(parse_time(row["time"]))
        values.append(float(value))
    return dict(out)


class Report:
    def __init__(self, client: influx.InfluxClient, minutes: float, out: Path):
        self.client = client
        self.minutes = minutes
        self.out = out
        self.step = bucket_seconds(minutes)
        self.where = f"time > now() - {int(minutes * 60)}s"
        self.sections: list[str] = []

    # The queries below are InfluxQL built from this file's constants and numbers only (no user
    # input): ruff's S608 (SQL injection) does not apply.
    def query(self, influxql: str) -> list[dict]:
        return self.client.query(influxql)

    def grouped(self, field: str, measurement: str, tags: str, agg: str = "max") -> list[dict]:
        return self.query(
            f'SELECT {agg}("{field}") AS "value" FROM "{measurement}" WHERE {self.where} '  # noqa: S608
            f"GROUP BY time({self.step}s), {tags} fill(none)"
        )

    # ------------------------------------------------------------------ plotting
    def plot(self, name: str, title: str, panels: list[tuple[str, str, dict]]) -> str | None:
        """panels: (subtitle, y label, {label: (times, values)}); returns the file name or None."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt

        panels = [p for p in panels if p[2]]
        if not panels:
            return None
        fig, axes = plt.subplots(len(panels), 1, figsize=(FIGURE_SIZE[0], FIGURE_SIZE[1] * len(panels)), squeeze=False)
        for ax, (subtitle, ylabel, lines) in zip(axes[:, 0], panels):  # noqa: B905
            for label, (times, values) in sorted(lines.items()):
                ax.plot(times, values, label=label, linewidth=1.2)
            ax.set_title(subtitle, fontsize=10)
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=dt.UTC))
            ax.legend(fontsize=8, loc="upper left", ncol=min(4, len(lines)))
        axes[-1, 0].set_xlabel("time (UTC)")
        fig.suptitle(title)
        fig.tight_layout()
        path = self.out / f"{name}.png"
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
        return path.name

    def add(self, heading: str, text: str, image: str | None, empty: str) -> None:
        body = [f"## {heading}", "", text, ""]
        body += [f"![{heading}]({image})", ""] if image else [f"_No data: {empty}_", ""]
        self.sections.append("\n".join(body))

    # ------------------------------------------------------------------ sections
    def lag(self) -> list[str]:
        bytes_lines = dict(
            series(self.grouped("replay_lag_bytes", "replication", '"application_name"'), "application_name", "value")
        )
        heartbeat = series(self.grouped("lag_seconds", "heartbeat_lag", '"node"'), "node", "value")
        image = self.plot(
            "lag",
            "Replication lag per subscription",
            [
                ("bytes: publisher WAL position minus replay position (pg_stat_replication)", "bytes", bytes_lines),
                ("seconds: age of the oldest heartbeat beat not yet seen (0 when caught up)", "seconds", heartbeat),
            ],
        )
        self.add(
            "Replication lag",
            "Byte lag per subscription (`replication.replay_lag_bytes`, tag `application_name`) and the "
            "end-to-end heartbeat lag per subscriber (`heartbeat_lag.lag_seconds`). Byte lag jumps with "
            "autovacuum or full-page images while no row is missing; the heartbeat lag is the time a change "
            "needs to arrive.",
            image,
            "no `replication` or `heartbeat_lag` points in the period (is the sampler running?)",
        )
        rows = ["| subscription | last replay lag (bytes) | max (bytes) |", "|---|---:|---:|"]
        for name, (_times, values) in sorted(bytes_lines.items()):
            rows.append(f"| {name} | {values[-1]:,.0f} | {max(values):,.0f} |")
        rows += ["", "| subscriber | last heartbeat lag (s) | max (s) |", "|---|---:|---:|"]
        for name, (_times, values) in sorted(heartbeat.items()):
            rows.append(f"| {name} | {values[-1]:.3f} | {max(values):.3f} |")
        return rows

    def retained_wal(self) -> list[str]:
        lines = series(self.grouped("retained_wal_bytes", "replication_slot", '"slot_name"'), "slot_name", "value")
        image = self.plot("retained_wal", "WAL retained per replication slot", [("", "bytes", lines)])
        self.add(
            "Retained WAL per slot",
            "`replication_slot.retained_wal_bytes` (current WAL position minus the slot's restart_lsn), "
            "tag `slot_name`.",
            image,
            "no `replication_slot` points in the period",
        )
        status = self.query(
            f'SELECT last("wal_status") AS "wal_status", last("active") AS "active" FROM "replication_slot" '  # noqa: S608
            f'WHERE {self.where} GROUP BY "slot_name"'
        )
        rows = ["| slot | wal_status | active |", "|---|---|---|"]
        for row in sorted(status, key=lambda r: r.get("slot_name", "")):
            rows.append(f"| {row.get('slot_name')} | {row.get('wal_status')} | {row.get('active')} |")
        return rows

    def locks(self) -> None:
        rows = self.grouped("lock_count", "locks", '"node", "mode"')
        by_node: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            by_node[row.get("node", "")].append(row)
        panels = []
        for node in sorted(by_node):
            lines = series(by_node[node], "mode", "value")
            lines = {
                mode: data for mode, data in lines.items() if mode in SEED_LOCK_MODES or any(v > 0 for v in data[1])
            }
            panels.append((f"node {node}", "locks", lines))
        image = self.plot("locks", "Locks by mode", panels)
        self.add(
            "Locks by mode",
            "`locks.lock_count` per `mode` and `node` (pg_locks rows; the seed's panel showed AccessShareLock, "
            "ExclusiveLock, RowExclusiveLock, ShareLock and ShareUpdateExclusiveLock).",
            image,
            "no `locks` points in the period",
        )

    def tps(self) -> None:
        rows = self.query(
            f'SELECT non_negative_derivative(max("xact_commit"), 1s) AS "value" FROM "database" '  # noqa: S608
            f'WHERE {self.where} GROUP BY time({self.step}s), "node" fill(none)'
        )
        lines = series(rows, "node", "value")
        image = self.plot("tps", "Transactions per second", [("committed transactions per second", "tx/s", lines)])
        self.add(
            "Transactions per second",
            "Derivative of `database.xact_commit` (pg_stat_database of each node's database) per second.",
            image,
            "no `database` points in the period (or a single one: a rate needs two)",
        )

    def failover_slots(self) -> list[str]:
        tags = '"node", "slot_name"'
        synced = series(self.grouped("synced", "replication_slot", tags), ("node", "slot_name"), "value")
        inactive = series(self.grouped("inactive_seconds", "replication_slot", tags), ("node", "slot_name"), "value")
        image = self.plot(
            "failover_slots",
            "Failover slots (PostgreSQL 17+) per node/slot",
            [
                ("synced: 1 on a standby's synchronized copy of a failover slot", "synced (0/1)", synced),
                ("inactive seconds (no point while the slot is in use)", "seconds", inactive),
            ],
        )
        self.add(
            "Failover slots",
            "`replication_slot.synced` and `replication_slot.inactive_seconds` per `node`/`slot_name` "
            "(PostgreSQL 17+; older servers' slots have neither). Healthy: every failover slot of the primary "
            "(`failover` = 1, in use) is listed on its physical standby with `synced` = 1, where its inactive "
            "seconds are the time since its last synchronization (back near 0 every cycle of the slot sync worker, "
            "at most 30 s apart while idle: a line that keeps rising means synchronization stopped); a failover "
            "slot the standby lacks is lost when the standby is promoted.",
            image,
            "no slot of a PostgreSQL 17+ node in the period (failover, synced and inactive_since are 17+ columns)",
        )
        # One selector: the other fields come from the same (last) point, so inactive_seconds is empty
        # for a slot in use now rather than its last value from an earlier inactive spell.
        latest = self.query(
            'SELECT last("failover") AS "failover", "synced", "active", "inactive_seconds", "invalidation_reason" '  # noqa: S608
            f'FROM "replication_slot" WHERE {self.where} GROUP BY "node", "slot_name"'
        )
        if not latest:
            return ["_No failover sync state: no slot of a PostgreSQL 17+ node in the period._"]
        rows = [
            "| node | slot | failover | synced | active | inactive (s) | invalidation_reason |",
            "|---|---|---|---|---|---:|---|",
        ]
        for row in sorted(latest, key=lambda r: (r.get("node", ""), r.get("slot_name", ""))):
            inactive_seconds = row.get("inactive_seconds")
            rows.append(
                f"| {row.get('node')} | {row.get('slot_name')} | {row.get('failover')} | {row.get('synced')} | "
                f"{row.get('active')} | {'' if inactive_seconds is None else f'{inactive_seconds:.0f}'} | "
                f"{row.get('invalidation_reason') or ''} |"
            )
        return rows

    def conflicts(self) -> None:
        columns = ", ".join(f'max("confl_{kind}") AS "{kind}"' for kind in CONFLICT_TYPES)
        rows = self.query(
            f'SELECT {columns} FROM "subscription" WHERE {self.where} '  # noqa: S608
            f'GROUP BY time({self.step}s), "node", "subscription" fill(none)'
        )
        panels = [(kind, "conflicts", series(rows, ("node", "subscription"), kind)) for kind in CONFLICT_TYPES]
        image = self.plot("conflicts", "Conflicts per type (cumulative) per node/subscription", panels)
        self.add(
            "Conflicts per type",
            "`subscription.confl_<type>` per `node`/`subscription`: the conflicts the apply worker met "
            "(pg_stat_subscription_stats, PostgreSQL 18+), cumulative, one panel per type. A rising line is a "
            "conflict of that type in the period; the server log names the rows.",
            image,
            "no conflict counters in the period (they exist on PostgreSQL 18+ subscribers only)",
        )

    def write(self) -> Path:
        # Private like the rest of .lab (0700 / 0600): the page names the lab's nodes and values.
        self.out.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.out.chmod(0o700)
        for stale in IMAGES:
            (self.out / f"{stale}.png").unlink(missing_ok=True)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        start = now - dt.timedelta(minutes=self.minutes)
        lag_rows = self.lag()
        slot_rows = self.retained_wal()
        self.locks()
        self.tps()
        failover_rows = self.failover_slots()
        self.conflicts()
        page = [
            "# Logical replication lab report",
            "",
            f"Period: {start.isoformat()} to {now.isoformat()} (last {self.minutes:g} minutes), "
            f"points grouped by {self.step} s. Source: {self.client!r}.",
            "",
            "## Latest values",
            "",
            *lag_rows,
            "",
            *slot_rows,
            "",
            *failover_rows,
            "",
            *self.sections,
            "Generated by `make report` (scripts/report.py). Measurements: roles/sampler/README.md; "
            "the same queries drive the Grafana dashboards in roles/grafana/files/dashboards.",
            "",
        ]
        path = self.out / "report.md"
        path.write_text("\n".join(page))
        for written in [path, *(self.out / f"{name}.png" for name in IMAGES)]:
            if written.exists():
                written.chmod(0o600)
        return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", default=str(ROOT / ".lab" / "endpoints.json"), help="the lab's endpoints.json")
    parser.add_argument("--minutes", type=float, default=15.0, help="period: the last N minutes (default 15)")
    parser.add_argument("--out", default=str(ROOT / ".lab" / "report"), help="output directory")
    args = parser.parse_args(argv)
    os.umask(0o077)  # every file and directory written is private (0600 / 0700), like the rest of .lab
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    try:
        client = influx.client_from_endpoints(args.endpoints, timeout=30.0)
    except (OSError, ValueError) as exc:
        print(f"report: cannot read {args.endpoints}: {exc}", file=sys.stderr)
        return 2
    if client is None:
        print(f"report: {args.endpoints} has no influxdb section (run the metrics playbook first)", file=sys.stderr)
        return 2
    if not client.ping():
        print(f"report: InfluxDB at {client.url} does not answer /ping", file=sys.stderr)
        return 2
    try:
        path = Report(client, args.minutes, Path(args.out)).write()
    except influx.InfluxError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print(f"report written: {path} (images next to it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
