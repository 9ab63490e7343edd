# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Server facts and settings: version, recovery, ``wal_level`` (running and pending), limits and their use."""

from __future__ import annotations

import time

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import (
    CURRENT_LSN,
    columns_sql,
    fetch_rows,
    memoize,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._slots import SLOT_COUNT
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    PARALLEL_APPLY_MAJOR,
    PARAMETER_MAJORS,
    REPLICATION_ORIGINS_MAJOR,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    format_db_error,
    psycopg,
    sql,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.guc import (
    SESSION_RELOAD_CONTEXTS,
    SESSION_SOURCES,
    Guc,
    SettingState,
    group_file_settings,
    pending_restart_names,
    plan,
    predict,
)


@memoize
def server_query(major):
    """Version, recovery, wal_level (with its pg_settings row), limits and their use, WAL position."""
    columns = [
        "split_part(current_setting('server_version'), ' ', 1) AS version",
        "current_setting('server_version_num')::int AS version_num",
        "pg_catalog.pg_is_in_recovery() AS in_recovery",
        "current_database()::text AS database",
        f"({CURRENT_LSN})::text AS current_lsn",
        f"pg_catalog.pg_wal_lsn_diff({CURRENT_LSN}, '0/0')::bigint AS current_lsn_bytes",
        # A standby's end of WAL (what a promotion replays up to) and its last replayed commit; NULL on a primary.
        "pg_catalog.pg_last_wal_receive_lsn()::text AS receive_lsn",
        "pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(), '0/0')::bigint AS receive_lsn_bytes",
        "extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp())::float8"
        " AS seconds_since_last_replayed_commit",
        "w.setting AS wal_level",
        "w.boot_val AS wal_level_boot_val",
        "w.source AS wal_level_source",
        "w.pending_restart AS wal_level_pending_restart",
        "w.vartype AS wal_level_vartype",
        "w.enumvals AS wal_level_enumvals",
        "w.context AS wal_level_context",
        "current_setting('max_replication_slots')::int AS max_replication_slots",
        f"{SLOT_COUNT} AS replication_slots_used",
        "current_setting('max_wal_senders')::int AS max_wal_senders",
        "a.wal_senders_used",
        "current_setting('max_logical_replication_workers')::int AS max_logical_replication_workers",
        "a.logical_replication_workers_used",
        "current_setting('max_worker_processes')::int AS max_worker_processes",
        "current_setting('max_sync_workers_per_subscription')::int AS max_sync_workers_per_subscription",
    ]
    if major >= PARALLEL_APPLY_MAJOR:
        columns.append(
            "current_setting('max_parallel_apply_workers_per_subscription')::int"
            " AS max_parallel_apply_workers_per_subscription"
        )
    if major >= REPLICATION_ORIGINS_MAJOR:
        columns.append("current_setting('max_active_replication_origins')::int AS max_active_replication_origins")
    columns += [
        "NULLIF(pg_catalog.pg_size_bytes(current_setting('max_slot_wal_keep_size')), -1) AS max_slot_wal_keep_size",
        "pg_catalog.has_function_privilege('pg_catalog.pg_show_all_file_settings()', 'EXECUTE')"
        " AS can_read_file_settings",
    ]
    return sql.SQL(
        "SELECT {} FROM (SELECT count(*) FILTER (WHERE backend_type = 'walsender')::int AS wal_senders_used,"
        " count(*) FILTER (WHERE starts_with(backend_type, 'logical replication ')"
        " AND backend_type <> 'logical replication launcher')::int AS logical_replication_workers_used"
        " FROM pg_catalog.pg_stat_activity) a, pg_catalog.pg_settings w WHERE w.name = 'wal_level'"
    ).format(columns_sql(columns))


SETTINGS_QUERY = (
    "SELECT name, setting, unit, vartype, context, enumvals, min_val, max_val, boot_val, source, sourcefile,"
    " pending_restart FROM pg_catalog.pg_settings"
)
"""Every parameter of ``pg_settings`` (the ``server_settings`` module's read)."""

_FILE_SETTINGS = "SELECT seqno, sourcefile, sourceline, name, setting, applied, error FROM pg_catalog.pg_file_settings"
FILE_SETTINGS_QUERY = _FILE_SETTINGS + " ORDER BY seqno"
"""The configuration files' entries, in the order PostgreSQL applies them."""

WAL_LEVEL_FILE_SETTINGS_QUERY = _FILE_SETTINGS + " WHERE lower(name) = 'wal_level' ORDER BY seqno"


def wal_level_pending(row, file_rows):
    """The ``wal_level`` the next restart brings when it differs from the running one, else ``None``.

    ``row`` is the server row (``wal_level*`` columns), ``file_rows`` the ``pg_file_settings``
    rows of ``wal_level`` ordered by ``seqno``.
    """
    guc = Guc(
        {
            "name": "wal_level",
            "setting": row["wal_level"],
            "vartype": row.get("wal_level_vartype") or "enum",
            "enumvals": row.get("wal_level_enumvals"),
            "boot_val": row.get("wal_level_boot_val"),
            "source": row.get("wal_level_source"),
            "context": row.get("wal_level_context") or "postmaster",
            "pending_restart": row.get("wal_level_pending_restart"),
        }
    )
    files, _problems = group_file_settings(file_rows)
    pending = SettingState(guc, files.get("wal_level")).pending
    return guc.display(pending) if pending is not None else None


def collect_server(conn, major, pending=True):
    """Server facts (a dict): version, recovery, ``wal_level`` (running and pending), limits and use, WAL position.

    ``pending`` reads ``pg_file_settings`` (a second query, when the session may) to tell the
    ``wal_level`` a restart would bring (``wal_level_pending``, ``None`` when it is the running
    one or unknown). Without that privilege only PostgreSQL's ``pending_restart`` flag is returned.
    """
    row = fetch_rows(conn, server_query(major))[0]
    facts = {
        "version": row["version"],
        "version_num": row["version_num"],
        "major": row["version_num"] // 10000,
        "in_recovery": row["in_recovery"],
        "database": row["database"],
        "current_lsn": row["current_lsn"],
        "current_lsn_bytes": row["current_lsn_bytes"],
        "receive_lsn": row["receive_lsn"],
        "receive_lsn_bytes": row["receive_lsn_bytes"],
        "seconds_since_last_replayed_commit": row["seconds_since_last_replayed_commit"],
        "wal_level": row["wal_level"],
        "wal_level_pending": None,
        "wal_level_pending_restart": bool(row["wal_level_pending_restart"]),
        "wal_level_pending_known": False,
    }
    for key in (
        "max_replication_slots",
        "replication_slots_used",
        "max_wal_senders",
        "wal_senders_used",
        "max_logical_replication_workers",
        "logical_replication_workers_used",
        "max_worker_processes",
        "max_sync_workers_per_subscription",
        "max_parallel_apply_workers_per_subscription",
        "max_active_replication_origins",
        "max_slot_wal_keep_size",
    ):
        if key in row:
            facts[key] = row[key]
    if pending and row["can_read_file_settings"]:
        facts["wal_level_pending"] = wal_level_pending(row, fetch_rows(conn, WAL_LEVEL_FILE_SETTINGS_QUERY))
        facts["wal_level_pending_restart"] = facts["wal_level_pending"] is not None
        facts["wal_level_pending_known"] = True
    return facts


# ----------------------------------------------------------------------------------------------
# The server_settings module: desired parameters vs pg_settings and the files -> ALTER SYSTEM
# ----------------------------------------------------------------------------------------------

FILE_SETTINGS_ACTION = (
    "reading pg_file_settings failed (it needs a superuser, or SELECT on pg_catalog.pg_file_settings"
    " and EXECUTE on pg_catalog.pg_show_all_file_settings())"
)


RELOAD_WAIT_SECONDS = 5.0


def read_state(m):
    """Return (gucs by name, pg_file_settings rows)."""
    gucs = {row["name"].lower(): Guc(row) for row in m.query(SETTINGS_QUERY)}
    files = m.query(FILE_SETTINGS_QUERY, action=FILE_SETTINGS_ACTION)
    return gucs, files


def states_for(names, gucs, file_rows, placeholders):
    by_name, _problems = group_file_settings(file_rows)
    result = {}
    for name in names:
        guc = gucs.get(name) or placeholders[name]
        result[name] = SettingState(guc, by_name.get(name))
    return result


def statement(op, name, values):
    target = sql.Identifier(*name.split("."))
    if op == "reset":
        return sql.SQL("ALTER SYSTEM RESET {}").format(target)
    return sql.SQL("ALTER SYSTEM SET {} = {}").format(target, sql.SQL(", ").join(sql.Literal(v) for v in values))


def restore_statement(state):
    """The statement that puts back the postgresql.auto.conf entry a state had."""
    if state.auto is None:
        return statement("reset", state.guc.name, None)
    return statement("set", state.guc.name, state.guc.sql_values(state.auto))


def apply_actions(m, the_plan):
    """Run the planned ALTER SYSTEM statements (each outside a transaction block, as PostgreSQL requires).

    If the server rejects one, the postgresql.auto.conf entries this run already changed are put
    back before the module fails, so nothing is left half-applied.
    """
    done = []
    for op, name, values in the_plan.actions:
        try:
            m.execute(statement(op, name, values), autocommit=True, raise_errors=True)
        except psycopg.Error as exc:
            error = format_db_error(exc, action=f"executing {m.queries[-1]} failed")
            restored, not_restored = [], []
            for done_name in reversed(done):
                try:
                    m.execute(restore_statement(the_plan.states[done_name]), autocommit=True, raise_errors=True)
                    restored.append(done_name)
                except psycopg.Error:
                    not_restored.append(done_name)
            if restored:
                error += ". Restored what this run had already written: " + ", ".join(reversed(restored))
            if not_restored:
                error += ". Could NOT restore: " + ", ".join(reversed(not_restored))
            m.fail(error, sqlstate=exc.sqlstate)
        done.append(name)


def wait_for_reload(m, names, placeholders):
    """Re-read the state until reloadable parameters show their file value (or the wait times out).

    ``pg_reload_conf()`` only signals the postmaster; our session applies the files when it
    gets the signal in turn, between two statements.
    """
    deadline = time.monotonic() + RELOAD_WAIT_SECONDS
    while True:
        gucs, file_rows = read_state(m)
        states = states_for(names, gucs, file_rows, placeholders)
        waiting = [name for name, state in states.items() if state.pending is not None and applies_in_session(state)]
        if not waiting or time.monotonic() > deadline:
            return gucs, file_rows, states
        time.sleep(0.05)


def applies_in_session(state):
    """True when a reload changes the value our session sees (not for backend-start or per-role values)."""
    return state.guc.context in SESSION_RELOAD_CONTEXTS and state.guc.source not in SESSION_SOURCES


def version_errors(names, gucs, major):
    """``(errors, gated names)``: parameters this server lacks because they came with a newer major."""
    errors, gated = [], set()
    for name in names:
        key = name.strip().lower() if isinstance(name, str) else None
        minimum = PARAMETER_MAJORS.get(key)
        if minimum is not None and key not in gucs and major < minimum:
            errors.append(f"parameter {key} requires PostgreSQL >= {minimum} (server is {major})")
            gated.add(name)
    return errors, gated


def run(m):
    """The ``server_settings`` module's run: plan ALTER SYSTEM from ``settings``/``reset``, apply, reload, report."""
    desired = m.params["settings"] or {}
    reset = m.params["reset"] or []
    gucs, file_rows = read_state(m)
    gate_errors, gated = version_errors([*desired, *reset], gucs, m.server_major)
    desired = {name: value for name, value in desired.items() if name not in gated}
    reset = [name for name in reset if name not in gated]
    the_plan = plan(gucs, file_rows, desired, reset)
    if gate_errors or the_plan.errors:
        errors = gate_errors + the_plan.errors
        m.fail("Nothing was changed: " + "; ".join(errors), errors=errors)
    names = list(the_plan.states)
    placeholders = {name: state.guc for name, state in the_plan.states.items() if name not in gucs}
    before = {name: state.as_dict() for name, state in the_plan.states.items()}

    if the_plan.actions:
        the_plan.reload = True  # also keeps pg_settings.pending_restart accurate for restart-only parameters
    apply_actions(m, the_plan)
    if the_plan.reload:
        m.execute(sql.SQL("SELECT pg_reload_conf()"), autocommit=True)

    if m.check_mode:
        ops = {name: op for op, name, _values in the_plan.actions}
        after = {
            name: predict(state, the_plan.desired[name], the_plan.reload, ops.get(name))
            for name, state in the_plan.states.items()
        }
    else:
        if the_plan.reload:
            gucs, file_rows, states = wait_for_reload(m, names, placeholders)
        else:
            states = the_plan.states
        after = {name: state.as_dict() for name, state in states.items()}
        for name, state in states.items():
            if state.pending is not None and applies_in_session(state):
                m.warn(f"{name}: the reloaded value {state.as_dict()['pending']!r} is not in effect yet")
    others = pending_restart_names(gucs, file_rows, exclude=after)
    pending_restart = sorted(set(others) | {name for name, state in after.items() if state["pending_restart"]})

    m.exit(
        changed=the_plan.changed,
        diff=(before, after),
        settings=after,
        previous=the_plan.previous,
        restart_required=bool(pending_restart),
        pending_restart=pending_restart,
    )
