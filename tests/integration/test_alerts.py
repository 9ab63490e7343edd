"""The Grafana alert rules (``_alert_rules.py``, numbers from ``_thresholds.py``) against real data.

Grafana cannot run here, so its part is done the way Grafana does it: a REAL InfluxDB 1.x
(``influxd``, ``sampler_support.running_influxd``) receives the points of the REAL sampler
(``roles/sampler/files/inventium_sampler.py``) sampling two throwaway PostgreSQL servers - a
publisher of the newest selected major with ``max_slot_wal_keep_size = 64MB``, a subscriber of the
oldest with one logical replication worker (``max_logical_replication_workers = 1``) - and each
rule's query runs with ``$timeFilter`` expanded as Grafana expands it for the rule's relative time
range (``time >= <from>ms and time <= <to>ms``). The condition is evaluated as Grafana's
expressions do: reduce ``B`` (last value, non-numbers dropped) per series, threshold ``C``.

1. Healthy, caught-up pair: every rule's query returns data without an error and none fires, with
   the collection's thresholds and with the short windows and the 1-byte limit used below (so what
   fires later is the state, not the numbers).
2. A second subscription that gets no worker (the only one is taken): "without a running apply
   worker" fires for it and not for the running one.
3. A row the subscriber already has, inserted on the publisher: the apply worker fails on the
   duplicate key again and again - "errors growing" fires with the collection's threshold, and the
   lag rules fire with a 3 s threshold (the heartbeat waits behind the failing transaction).
4. The subscription disabled: its slot turns inactive and retains the WAL written since -
   "subscription disabled", "slot inactive" (6 s windows), "inactive slot retains WAL" (1 byte)
   and the share of ``max_slot_wal_keep_size`` (a tiny share) fire; with the collection's
   thresholds the retained-WAL rules return data and do not fire (a few kB of 64 MB).
5. The disabled subscription given a pause record whose plan ended an hour ago: "pause overdue"
   fires, and "subscription disabled" no longer does (a planned pause is not a failure).

Not induced (too costly here): the collection's own lag and retained-WAL numbers being crossed.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from sampler_support import HEARTBEAT_SQL, PROGRAM, running_influxd, sampler_config

from ansible_collections.inventium.logical_replication.plugins.module_utils._alert_rules import alert_rules
from ansible_collections.inventium.logical_replication.plugins.module_utils._pause import (
    format_pause_record,
    make_pause_record,
)

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")

WINDOW_MINUTES = 0.1  # 6 s: a window the test can wait for
STATE_OVERRIDES = {
    "slot_inactive_minutes": WINDOW_MINUTES,
    "subscription_disabled_minutes": WINDOW_MINUTES,
    "subscription_not_running_minutes": WINDOW_MINUTES,
    "retained_wal_bytes": 1,
    "lag_seconds_warning": 3,
    "lag_seconds_critical": 3,
}
TINY_SHARE = {"retained_wal_fraction_warning": 1e-9, "retained_wal_fraction_critical": 1e-9}
DATABASE = "alerts"


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory):
    with running_influxd(tmp_path_factory.mktemp("influxdb")) as client:
        yield client


def rule(uid: str, overrides: dict | None = None) -> dict:
    (found,) = [r for r in alert_rules(overrides) if r["uid"] == uid]
    return found


def series_of(client, rule: dict) -> dict[tuple, list]:
    """Query ``A`` of the rule over its window, as Grafana sends it: ``{series tags: [values]}``."""
    now_ms = int(time.time() * 1000)
    time_filter = f"time >= {now_ms - rule['window_seconds'] * 1000}ms and time <= {now_ms}ms"
    rows = client.query(rule["query"].replace("$timeFilter", time_filter), database=DATABASE)
    column = re.search(r'AS "(\w+)"', rule["query"]).group(1)
    series: dict[tuple, list] = {}
    for row in rows:
        key = tuple(sorted((k, v) for k, v in row.items() if k not in ("time", "_measurement", column)))
        series.setdefault(key, []).append(row[column])
    return series


def firing(rule: dict, series: dict[tuple, list]) -> dict[tuple, float]:
    """Grafana's reduce (last, non-numbers dropped) and threshold: the series that fire, with their value."""
    fired = {}
    for key, values in series.items():
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not numbers:
            continue
        value = numbers[-1]
        if (rule["evaluator"] == "gt" and value > rule["value"]) or (
            rule["evaluator"] == "lt" and value < rule["value"]
        ):
            fired[key] = value
    return fired


def tag(key: tuple, name: str) -> str:
    return dict(key)[name]


def wait_for(what: str, probe: Callable[[], object], timeout: float = 45.0, log=None) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what}" + (f"\nsampler log:\n{log.read_text()}" if log else "")
            )
        time.sleep(1)


def assert_slots(fired: dict[tuple, float]) -> None:
    """The publisher's slot alerts_sub fires. So may alerts_starved: dropped in phase 2 while inactive, its last
    point stays inside the window (Grafana would keep that alert until the window has passed, too)."""
    slots = {(tag(key, "node"), tag(key, "slot_name")) for key in fired}
    assert ("pub", "alerts_sub") in slots, fired
    assert slots <= {("pub", "alerts_sub"), ("pub", "alerts_starved")}, fired


def fires_for(client, uid: str, overrides: dict | None = None) -> dict[tuple, float]:
    r = rule(uid, overrides)
    return firing(r, series_of(client, r))


def test_alert_rules_quiet_when_healthy_and_firing_when_induced(
    influxdb, pg_server_factory, pg_database_factory, pg_majors, tmp_path
):
    pub_server = pg_server_factory(pg_majors[-1], name="alertpub", settings={"max_slot_wal_keep_size": "64MB"})
    sub_server = pg_server_factory(
        pg_majors[0],
        name="alertsub",
        settings={"max_logical_replication_workers": 1, "wal_retrieve_retry_interval": "1s"},
    )
    pub = pg_database_factory(pub_server, "pub")
    sub = pg_database_factory(sub_server, "sub")
    for db in (pub, sub):
        db.execute(HEARTBEAT_SQL.read_text())
        db.execute("CREATE TABLE public.items (id int PRIMARY KEY)")
    pub.execute("CREATE PUBLICATION alerts_pub FOR TABLE public.replication_heartbeat, public.items")
    # copy_data false: no table synchronization worker needed (there is only one worker).
    sub.execute(
        f"CREATE SUBSCRIPTION alerts_sub CONNECTION '{pub.conninfo()}' PUBLICATION alerts_pub WITH (copy_data = false)"
    )
    wait_for(
        "the subscription's slot to be active",
        lambda: pub.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'alerts_sub' AND active"),
    )
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    config = sampler_config(
        tmp_path,
        {"pub": ("publisher", pub_server, pub.name), "sub": ("subscriber", sub_server, sub.name)},
        influxdb={"url": influxdb.url, "api": 1, "database": DATABASE},
    )
    log = tmp_path / "sampler.log"
    with open(log, "w") as stderr:
        sampler = subprocess.Popen(
            [sys.executable, str(PROGRAM), "--config", str(config), "--interval", "1", "--duration", "600"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        run_phases(influxdb, pub, sub, sampler, log)
    finally:
        sampler.terminate()
        try:
            sampler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sampler.kill()
            raise
    text = log.read_text()
    for password in (pub_server.password, sub_server.password):
        assert password not in text


def run_phases(client, pub, sub, sampler, log):
    every = [r["uid"] for r in alert_rules()]

    # 1. Healthy: every query answers with data (the errors rule needs two points per series).
    def all_have_data():
        return all(series_of(client, rule(uid)) for uid in every)

    wait_for("data for every rule's query", all_have_data, log=log)
    assert sampler.poll() is None, log.read_text()
    for overrides in ({}, STATE_OVERRIDES):
        for uid in every:
            r = rule(uid, overrides)
            series = series_of(client, r)
            assert series, f"{uid}: no data from {r['query']}"
            assert not firing(r, series), f"{uid} fires on a healthy pair ({overrides}): {series}"

    # 2. An enabled subscription without a worker (the only worker is taken).
    sub.execute(
        f"CREATE SUBSCRIPTION alerts_starved CONNECTION '{pub.conninfo()}' PUBLICATION alerts_pub"
        " WITH (copy_data = false)"
    )
    assert sub.scalar("SELECT count(pid) FROM pg_stat_subscription WHERE subname = 'alerts_starved'") == 0
    fired = wait_for(
        "'without a running apply worker' to fire",
        lambda: fires_for(client, "inventium-subscription-not-running", STATE_OVERRIDES),
        log=log,
    )
    assert {tag(key, "subscription") for key in fired} == {"alerts_starved"}, fired
    sub.execute("DROP SUBSCRIPTION alerts_starved")

    # 3. A duplicate key on apply, again and again.
    sub.execute("INSERT INTO public.items VALUES (1)")
    pub.execute("INSERT INTO public.items VALUES (1)")
    fired = wait_for(
        "'errors growing' to fire", lambda: fires_for(client, "inventium-subscription-errors"), timeout=60, log=log
    )
    assert {tag(key, "subscription") for key in fired} == {"alerts_sub"}, fired
    assert all(value > 0 for value in fired.values())
    for uid in ("inventium-lag-warning", "inventium-lag-critical"):
        fired = wait_for(f"'{uid}' to fire", lambda uid=uid: fires_for(client, uid, STATE_OVERRIDES), log=log)
        assert {tag(key, "node") for key in fired} == {"sub"}, fired
        assert all(value > 3 for value in fired.values())

    # 4. Disabled: the slot is inactive and retains the WAL of every beat since.
    sub.execute("ALTER SUBSCRIPTION alerts_sub DISABLE")
    fired = wait_for(
        "'subscription disabled' to fire",
        lambda: fires_for(client, "inventium-subscription-disabled", STATE_OVERRIDES),
        log=log,
    )
    assert {tag(key, "subscription") for key in fired} == {"alerts_sub"}, fired
    fired = wait_for(
        "'slot inactive' to fire", lambda: fires_for(client, "inventium-slot-inactive", STATE_OVERRIDES), log=log
    )
    assert_slots(fired)
    fired = wait_for(
        "'inactive slot retains WAL' to fire",
        lambda: fires_for(client, "inventium-inactive-slot-retained-wal", STATE_OVERRIDES),
        log=log,
    )
    assert_slots(fired)
    for severity in ("warning", "critical"):
        uid = f"inventium-retained-wal-fraction-{severity}"
        fired = fires_for(client, uid, TINY_SHARE)
        assert_slots(fired)
        assert all(0 < value < 1 for value in fired.values()), fired
        default = rule(uid)
        series = series_of(client, default)
        assert series, f"{uid}: no data although max_slot_wal_keep_size is set"
        assert not firing(default, series), series
    default = rule("inventium-inactive-slot-retained-wal")
    series = series_of(client, default)
    assert series
    assert not firing(default, series), series  # kB, not the collection's 1 GiB

    # 5. The same subscription as a planned pause whose plan ended an hour ago (the record pause.yml writes):
    #    "pause overdue" fires, and "subscription disabled" stops once its window holds only paused points.
    now = datetime.datetime.now(datetime.UTC)
    record = format_pause_record(
        make_pause_record(
            "alerts test", "maintenance", now - datetime.timedelta(hours=2), now - datetime.timedelta(hours=1)
        )
    )
    sub.execute(f"COMMENT ON SUBSCRIPTION alerts_sub IS '{record}'")
    fired = wait_for("'pause overdue' to fire", lambda: fires_for(client, "inventium-pause-overdue"), log=log)
    assert {tag(key, "subscription") for key in fired} == {"alerts_sub"}, fired
    assert all(value >= 3600 for value in fired.values()), fired
    wait_for(
        "'subscription disabled' to stop for a planned pause",
        lambda: not fires_for(client, "inventium-subscription-disabled", STATE_OVERRIDES),
        log=log,
    )
    assert sampler.poll() is None, log.read_text()
