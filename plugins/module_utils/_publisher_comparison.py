# Copyright (c) 2026, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to this collection: a subscriber compared with its publisher (``replication_info``'s ``publisher``).

What only the two servers together can tell, each from the file that owns it: the sequence gap
(``_sequences``), schema drift (``_schema_drift``) and, for paused subscriptions, their slots on the
publisher and its WAL rate (``_pause_record``), the failover flag of failover subscriptions' slots and two-way
replication without ``origin = none`` (``_checks``). The findings are ``_checks.finding`` dicts like every other check.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._checks import (
    check_failover_subscription_slots,
    check_two_way_origin,
    finding,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._pause_record import (
    measure_wal_rate,
    paused_subscriptions,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._schema_drift import (
    check_schema_drift,
    read_local_columns,
    read_published_columns,
    schema_drift,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._sequences import (
    SequenceError,
    check_sequence_gaps,
    publisher_params,
    publisher_secrets,
    sequence_gaps,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._slots import (
    collect_slots,
    collect_subscription_slots,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    PgConnectionError,
    connect_publisher,
    format_db_error,
    psycopg,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import redact

COMPARISONS = ("sequences", "schema_drift")
"""What :func:`compare_with_publisher` returns besides its findings (``replication_info`` subsets)."""

WAL_RATE_SAMPLE_SECONDS = 1.0
"""How long the publisher's WAL rate is sampled for a paused subscription's projected time to its limit."""


def _unknown(what, error):
    return finding(
        "warning",
        "publisher_comparison_unknown",
        f"the {what} could not be compared with the publisher: {error}",
        "Check the publisher connection given to replication_info (option publisher: as this host reaches the "
        "publisher) and the role's privileges there (SELECT on the published tables' sequences; the catalogs).",
    )


def compare_with_publisher(conn, subscriptions, publisher):
    """Compare the subscriber on ``conn`` with its publisher; never raises for the publisher's sake.

    ``subscriptions``: the subscriber's subscription states (``_subscriptions.collect_subscriptions``);
    ``publisher``: the ``publisher`` option (libpq keywords). Returns ``{sequences, schema_drift,
    paused_slots, wal_rate, checks}``: the gap per sequence and the drift items of the tables of the
    subscriptions' publications, the publisher's slots of paused subscriptions (``{name: slot}``) and
    its WAL bytes/s (both ``None`` when nothing is paused), and the findings - a publisher that cannot be
    reached or read is one warning ``publisher_comparison_unknown`` (password redacted), not an error.
    """
    result = {"sequences": None, "schema_drift": None, "paused_slots": None, "wal_rate": None, "checks": []}
    publications = sorted({p for sub in subscriptions for p in sub.get("publications") or ()})
    if not publications:
        return result
    secrets = publisher_secrets(publisher)
    try:
        pub_conn = connect_publisher(publisher_params(publisher))
    except PgConnectionError as exc:
        result["checks"].append(_unknown("subscriber", redact(str(exc), secrets)))
        return result
    try:
        _compare(conn, pub_conn, subscriptions, publications, result, secrets)
    finally:
        pub_conn.close()
    return result


def _compare(conn, pub_conn, subscriptions, publications, result, secrets):
    try:
        result["sequences"] = sequence_gaps(pub_conn, conn, publications=publications)
        result["checks"] += check_sequence_gaps(result["sequences"])
    except SequenceError as exc:
        result["checks"].append(_unknown("sequences", redact(str(exc), secrets)))
    except psycopg.Error as exc:
        result["checks"].append(_unknown("sequences", format_db_error(exc, secrets)))
    try:
        published = read_published_columns(pub_conn, publications)
        result["schema_drift"] = schema_drift(published, read_local_columns(conn, published))
        result["checks"] += check_schema_drift(result["schema_drift"])
    except psycopg.Error as exc:
        result["checks"].append(_unknown("schema", format_db_error(exc, secrets)))
    try:
        result["checks"] += _failover_and_loops(conn, pub_conn, subscriptions)
    except psycopg.Error as exc:
        result["checks"].append(_unknown("failover slots and two-way replication", format_db_error(exc, secrets)))
    paused = {sub.get("slot_name") for sub, _record in paused_subscriptions(subscriptions)} - {None}
    if paused:
        try:
            slots = collect_slots(pub_conn, pub_conn.info.server_version // 10000)
            result["paused_slots"] = {s["name"]: s for s in slots if s["name"] in paused}
            result["wal_rate"] = measure_wal_rate(pub_conn, WAL_RATE_SAMPLE_SECONDS)["bytes_per_second"]
        except psycopg.Error as exc:
            result["checks"].append(_unknown("paused subscriptions' slots", format_db_error(exc, secrets)))


def _failover_and_loops(conn, pub_conn, subscriptions):
    """Failover subscriptions whose slot on the publisher is no failover slot, and the publisher subscribing back
    to this node without an origin filter (``_checks.check_failover_subscription_slots``,
    ``check_two_way_origin``)."""
    pub_major = pub_conn.info.server_version // 10000
    found = []
    if any(sub.get("failover") for sub in subscriptions):
        found += check_failover_subscription_slots(subscriptions, collect_slots(pub_conn, pub_major))
    local_slots = collect_slots(conn, conn.info.server_version // 10000)
    found += check_two_way_origin(subscriptions, local_slots, collect_subscription_slots(pub_conn, pub_major))
    return found
