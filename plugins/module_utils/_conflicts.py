# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2026, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PostgreSQL 18's logical replication conflicts on a two-way pair (``playbooks/conflicts.yml``, through the
``conflicts_*`` filters).

The pair: two nodes, each publishing the demo table and subscribing to the other with ``origin = none``.
One node is the *winner* (the inventory's first peer unless told otherwise), the other the *loser*:
where a conflict stops both apply workers, the winner keeps its row and skips the loser's transaction
(``ALTER SUBSCRIPTION ... SKIP``, the LSN read from its server log), the loser repairs its row so that
the winner's change applies - under a replication origin of its own, so that the repair is not sent back
(the other node's subscription has ``origin = none``).

Each case writes on both nodes while both subscriptions are disabled (so the writes are concurrent for
replication), then enables both: what each apply worker meets is then deterministic. The cases, each on
rows of its own (ids 10-60):

* ``insert_exists``: both insert id 10 - both apply workers stop (ERROR, retried);
* ``update_origin_differs``: both update id 40 - both log it and apply the other's value, so the nodes
  swap values (a divergence); the winner writes its value again;
* ``update_missing`` with ``delete_origin_differs``: the winner updates id 50, the loser deletes it - the
  loser cannot find the row to update, the winner deletes a row it changed itself: the row is gone on
  both (the update is lost). PostgreSQL 18 cannot give one without the other on a two-way pair with
  ``track_commit_timestamp``: the node that deleted the row no longer has it, the node that updated it
  changed it locally;
* ``delete_missing``: both delete id 60;
* ``update_exists``: the winner sets ``u = 34`` on id 30, the loser on id 32 - both stop;
* ``multiple_unique_conflicts``: both insert id 20 with ``u = 20`` - the primary key and the unique ``u``
  both conflict: both stop.

An ERROR conflict is counted at every retry of the apply worker, so its counters go up by at least one;
a LOG conflict by exactly one per row.
"""

from __future__ import annotations

import re

from ansible_collections.inventium.logical_replication.plugins.module_utils._subscription_plan import parse_lsn
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    CONFLICT_STATS_MAJOR,
    CONFLICT_TYPES,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (
    parse_qualified_name,
    quote_ident,
)

WINNER = "winner"
LOSER = "loser"
ROLES = (WINNER, LOSER)

DEFAULT_TABLE = "public.conflict_demo"
DEFAULT_REPAIR_ORIGIN = "inventium_conflicts_repair"
REQUIRED_SETTINGS = ("track_commit_timestamp", "logging_collector")
"""``track_commit_timestamp``: without it PostgreSQL cannot tell which origin last changed a row, and
``update_origin_differs`` / ``delete_origin_differs`` are never detected. ``logging_collector``: the conflicts'
log lines (and the LSN to skip) are read from the server log through SQL. Both take effect at a restart."""

LOG_LINE_WIDTH = 110
_TIMESTAMP = re.compile(r" at \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}(?::?\d{2})?| [A-Z]+)?(?=\.|$)")


class ConflictsError(ValueError):
    """Bad input to the conflicts filters (a missing subscription, a server without conflict counters)."""


def _literal(value):
    """A text literal (standard_conforming_strings, PostgreSQL's default since 9.1: only quotes are doubled)."""
    text = str(value)
    if "\x00" in text:
        raise ConflictsError("a value with a NUL byte cannot be written as SQL")
    return "'" + text.replace("'", "''") + "'"


def render(template, table=DEFAULT_TABLE, **values):
    """A statement from ``template``: ``{table}`` becomes the quoted table name, every other ``{name}`` the text
    literal of ``values[name]``. The templates are this file's own; only the table and the values come from
    the inventory, and both are quoted here."""
    return template.format(table=table_name(table), **{key: _literal(value) for key, value in values.items()})


def table_name(table=DEFAULT_TABLE):
    """``table`` (``schema.name``, either part quoted or not) as SQL, quoted where needed."""
    return str(parse_qualified_name(table))


def setup_sql(table=DEFAULT_TABLE, repair_origin=DEFAULT_REPAIR_ORIGIN):
    """The statements that create the demo table and the repair origin where missing (idempotent)."""
    return [
        render("CREATE TABLE IF NOT EXISTS {table} (id integer PRIMARY KEY, v text, u integer UNIQUE)", table),
        render(
            "SELECT pg_catalog.pg_replication_origin_create({origin}) WHERE NOT EXISTS"
            " (SELECT FROM pg_catalog.pg_replication_origin WHERE roname = {origin})",
            table,
            origin=repair_origin,
        ),
    ]


def seed_sql(role, table=DEFAULT_TABLE, winner="winner", loser="loser"):
    """The rows each case starts from. The winner empties the table (TRUNCATE is replicated, and is no
    conflict) and inserts the rows the cases update or delete; the loser inserts row 32 - after the
    winner's rows arrived - so that on the winner it carries the loser's origin (``update_exists`` then
    meets no ``update_origin_differs`` first)."""
    if role == WINNER:
        return [
            render("TRUNCATE {table}", table),
            render(
                "INSERT INTO {table} (id, v, u) VALUES (30, {w}, 31), (40, 'seed', NULL), (50, 'seed', NULL),"
                " (60, 'seed', NULL)",
                table,
                w=winner,
            ),
        ]
    if role == LOSER:
        return [render("INSERT INTO {table} (id, v, u) VALUES (32, {lo}, 33)", table, lo=loser)]
    raise ConflictsError(f"role: {role!r} is not one of {', '.join(ROLES)}")


def cases(table=DEFAULT_TABLE, winner="winner", loser="loser", repair_origin=DEFAULT_REPAIR_ORIGIN):
    """The cases, in order: ``name``, ``title``, ``expect`` (per role: conflict type -> least counter increase),
    ``exact`` (LOG conflicts: exactly that increase), ``stops`` (ERROR: both apply workers stop until resolved),
    ``writes`` (per role: statements, one transaction), ``repair`` (the loser's statements under the repair
    origin, ``stops`` cases), ``change`` (what the loser then applies, ``stops`` cases), ``fix`` (the winner's
    statements after a divergence), ``diverges`` and ``outcome``."""
    repair_prefix = [
        render("SELECT pg_catalog.pg_replication_origin_session_setup({origin})", table, origin=repair_origin)
    ]

    def sql(*templates):
        return [render(t, table, w=winner, lo=loser) for t in templates]

    def case(key, title, expect, writes, stops=False, repair=(), fix=(), outcome="", change=None):
        return {
            "change": change,
            "name": key,
            "title": title,
            "expect": expect,
            "exact": not stops,
            "stops": stops,
            "writes": writes,
            "repair": repair_prefix + list(repair) if repair else [],
            "fix": list(fix),
            "diverges": bool(fix),
            "outcome": outcome,
        }

    return [
        case(
            "insert_exists",
            "both nodes insert id 10",
            {WINNER: {"insert_exists": 1}, LOSER: {"insert_exists": 1}},
            {
                WINNER: sql("INSERT INTO {table} (id, v) VALUES (10, {w})"),
                LOSER: sql("INSERT INTO {table} (id, v) VALUES (10, {lo})"),
            },
            stops=True,
            repair=sql("DELETE FROM {table} WHERE id = 10"),
            change="insert",
            outcome=f"row 10 = {winner}'s on both",
        ),
        case(
            "update_origin_differs",
            "both nodes update id 40",
            {WINNER: {"update_origin_differs": 1}, LOSER: {"update_origin_differs": 1}},
            {
                WINNER: sql("UPDATE {table} SET v = {w} WHERE id = 40"),
                LOSER: sql("UPDATE {table} SET v = {lo} WHERE id = 40"),
            },
            fix=sql("UPDATE {table} SET v = {w} WHERE id = 40"),
            outcome=f"each node applied the other's update: the values swapped; {winner} wrote its value again",
        ),
        case(
            "update_missing",
            f"{winner} updates id 50, {loser} deletes it",
            {WINNER: {"delete_origin_differs": 1}, LOSER: {"update_missing": 1}},
            {
                WINNER: sql("UPDATE {table} SET v = {w} WHERE id = 50"),
                LOSER: sql("DELETE FROM {table} WHERE id = 50"),
            },
            outcome="the delete won on both nodes (the update is lost): nothing to fix",
        ),
        case(
            "delete_missing",
            "both nodes delete id 60",
            {WINNER: {"delete_missing": 1}, LOSER: {"delete_missing": 1}},
            {
                WINNER: sql("DELETE FROM {table} WHERE id = 60"),
                LOSER: sql("DELETE FROM {table} WHERE id = 60"),
            },
            outcome="gone on both: nothing to fix",
        ),
        case(
            "update_exists",
            f"{winner} sets u = 34 on id 30, {loser} on id 32",
            {WINNER: {"update_exists": 1}, LOSER: {"update_exists": 1}},
            {
                WINNER: sql("UPDATE {table} SET u = 34 WHERE id = 30"),
                LOSER: sql("UPDATE {table} SET u = 34 WHERE id = 32"),
            },
            stops=True,
            repair=sql("UPDATE {table} SET u = 33 WHERE id = 32"),
            change="update",
            outcome=f"u = 34 on row 30 ({winner}'s change) on both",
        ),
        case(
            "multiple_unique_conflicts",
            "both nodes insert id 20 with u = 20",
            {WINNER: {"multiple_unique_conflicts": 1}, LOSER: {"multiple_unique_conflicts": 1}},
            {
                WINNER: sql("INSERT INTO {table} (id, v, u) VALUES (20, {w}, 20)"),
                LOSER: sql("INSERT INTO {table} (id, v, u) VALUES (20, {lo}, 20)"),
            },
            stops=True,
            repair=sql("DELETE FROM {table} WHERE id = 20"),
            change="insert",
            outcome=f"row 20 = {winner}'s on both",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Preflight
# ---------------------------------------------------------------------------------------------


def _row(check, go, detail, fix=""):
    return {"check": check, "go": bool(go), "detail": detail, "fix": "" if go else fix}


def preflight(facts):
    """Go/no-go rows (``check``, ``go``, ``detail``, ``fix``) for the pair, from one dict per node: ``host``,
    ``server`` (``replication_info`` with ``server``; ``reachable`` false when it could not connect),
    ``settings`` (``server_settings`` in check mode with :data:`REQUIRED_SETTINGS` on), ``configured``
    (``server_settings`` run for real by ``conflicts_configure``, else ``None``) and ``checks``
    (``replication_info`` checks of the pair's database with the other node as publisher; ``None`` when
    that database does not exist yet)."""
    rows = []
    for fact in facts:
        host = fact["host"]
        server = fact.get("server") or {}
        if server.get("reachable") is False or "server" not in server:
            rows.append(
                _row(
                    f"{host} PostgreSQL",
                    False,
                    f"cannot read the server: {server.get('error') or server.get('msg') or 'no answer'}",
                    "check peer_port and peer_password, and that PostgreSQL runs",
                )
            )
            continue
        major = int(server["server"]["major"])
        version = server["server"].get("version") or str(major)
        rows.append(
            _row(
                f"{host} PostgreSQL",
                major >= CONFLICT_STATS_MAJOR,
                f"PostgreSQL {version}"
                + (
                    ""
                    if major >= CONFLICT_STATS_MAJOR
                    else f": conflict counters (pg_stat_subscription_stats.confl_*) and conflict logging need "
                    f"PostgreSQL {CONFLICT_STATS_MAJOR}"
                ),
                f"run it against two PostgreSQL {CONFLICT_STATS_MAJOR}+ nodes",
            )
        )
        if major < CONFLICT_STATS_MAJOR:
            continue
        rows.append(_settings_row(host, fact.get("settings") or {}, fact.get("configured")))
        checks = fact.get("checks")
        loops = [c for c in (checks or {}).get("checks") or () if c.get("code") == "replication_loop"]
        rows.append(
            _row(
                f"{host} origin",
                not loops,
                loops[0]["message"]
                if loops
                else (
                    "no two-way replication without origin = none"
                    if checks is not None
                    else "the database does not exist yet (created with the pair)"
                ),
                (loops[0].get("hint") if loops else "")
                or "set origin: none on both subscriptions (inventium.logical_replication.subscription)",
            )
        )
    return rows


def _settings_row(host, settings, configured):
    """``settings``: ``server_settings`` in check mode with diff; ``configured``: its real run, else ``None``.
    What runs now is the diff's ``before`` (in check mode ``settings`` is the predicted state)."""
    before = ((settings.get("diff") or {}).get("before")) or settings.get("settings") or {}
    off = []
    pending = []
    for name in REQUIRED_SETTINGS:
        item = before.get(name) or {}
        if str(item.get("running", "")).lower() == "on":
            continue
        (pending if str(item.get("pending", "")).lower() == "on" else off).append(name)
    if not off and not pending:
        return _row(f"{host} settings", True, "track_commit_timestamp = on, logging_collector = on")
    parts = []
    if off:
        parts.append(f"{', '.join(off)} off")
    if pending:
        parts.append(f"{', '.join(pending)} set but not in effect before a restart")
    detail = "; ".join(parts)
    if configured is not None and configured.get("changed"):
        detail += "; now written with ALTER SYSTEM (server_settings), in effect after a restart"
    return _row(
        f"{host} settings",
        False,
        detail,
        "track_commit_timestamp = on (else update_origin_differs / delete_origin_differs are never detected) and "
        "logging_collector = on (the conflicts' log lines and the LSN to skip are read from the server log); "
        "-e conflicts_configure=true writes them with server_settings; both need a restart of PostgreSQL on "
        f"{host}",
    )


# ---------------------------------------------------------------------------------------------
# Watching a case
# ---------------------------------------------------------------------------------------------


def _subscription(info, name):
    for sub in info.get("subscriptions") or ():
        if sub.get("name") == name:
            return sub
    names = ", ".join(s.get("name", "?") for s in info.get("subscriptions") or ()) or "none"
    raise ConflictsError(f"no subscription {quote_ident(name)} in the result (there: {names})")


def _lsn(value):
    if value in (None, ""):
        return None
    if isinstance(value, int):
        return value
    return parse_lsn(value)


def log_line(diagnosis, width=LOG_LINE_WIDTH):
    """One line of a conflict's log entry: severity, the key, the first line of its DETAIL without the timestamp
    (the rows PostgreSQL 18 adds are left out), how often; the DETAIL cut so that the line fits ``width``."""
    detail = (diagnosis.get("detail") or diagnosis.get("message") or "").strip().splitlines()
    text = _TIMESTAMP.sub("", detail[0] if detail else "").strip()
    head = f"{diagnosis.get('severity') or 'LOG'}: " + (f"key {diagnosis['key']}: " if diagnosis.get("key") else "")
    tail = f" ({diagnosis['count']} times)" if (diagnosis.get("count") or 1) > 1 else ""
    room = (width or 0) - len(head) - len(tail)
    if width and len(text) > room:
        text = text[: max(room - 3, 0)].rstrip() + "..."
    return head + text + tail


def observe(info, subscription, expect=None, before=None, since_lsn=None):
    """What ``replication_info`` (``subscriptions``, and ``errors`` for the log) shows of a subscription during a case.

    ``expect``: conflict type -> least increase of its counter over ``before`` (counters); ``since_lsn``: the
    publisher's WAL position before it wrote the case's rows (an LSN or bytes) - only log entries of remote
    transactions that finished after it belong to the case. Returns ``stopped`` (no worker runs),
    ``counters``, ``deltas`` (per expected type), ``log`` (per expected type: the newest entry of the case -
    ``severity``, ``message``, ``detail``, ``count``, ``finish_lsn``, ``time``, ``line``), ``log_available``,
    ``log_source`` and ``seen`` (every expected counter reached and, where the log can be read, every
    expected type found in it).
    """
    sub = _subscription(info, subscription)
    if "conflicts" not in sub:
        raise ConflictsError(
            f"subscription {quote_ident(subscription)} has no conflict counters (PostgreSQL {CONFLICT_STATS_MAJOR}+)"
        )
    counters = {kind: int(sub["conflicts"].get(kind) or 0) for kind in CONFLICT_TYPES}
    expect = dict(expect or {})
    before = dict(before or {})
    since = _lsn(since_lsn)
    errors = info.get("errors") or {}
    available = bool(errors.get("available"))
    diagnoses = []
    for entry in errors.get("subscriptions") or ():
        if entry.get("name") == subscription:
            diagnoses = entry.get("diagnoses") or []
    log = {}
    for kind in expect:
        for diagnosis in diagnoses:  # newest first
            if diagnosis.get("conflict") != kind:
                continue
            finish = _lsn(diagnosis.get("finish_lsn"))
            if since is not None and (finish is None or finish <= since):
                continue
            log[kind] = {
                "severity": diagnosis.get("severity"),
                "message": diagnosis.get("message"),
                "detail": diagnosis.get("detail"),
                "count": diagnosis.get("count") or 1,
                "finish_lsn": diagnosis.get("finish_lsn"),
                "time": diagnosis.get("last_time") or diagnosis.get("time"),
                "line": log_line(diagnosis),
            }
            break
    deltas = {kind: counters[kind] - int(before.get(kind) or 0) for kind in expect}
    reached = all(deltas[kind] >= int(least) for kind, least in expect.items())
    return {
        "stopped": not sub.get("workers"),
        "counters": counters,
        "deltas": deltas,
        "log": log,
        "log_available": available,
        "log_source": errors.get("source") or errors.get("reason"),
        "seen": reached and (not available or all(kind in log for kind in expect)),
    }


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _resolution(case, records, winner, loser):
    by_role = {r["role"]: r for r in records}
    if case["stops"]:
        lsn = (by_role.get(WINNER) or {}).get("skip_lsn") or "?"
        return (
            f"{winner} skipped {loser}'s transaction (skip_lsn {lsn}); {loser} fixed its row under a replication "
            f"origin (not sent back), then applied {winner}'s {case['change']}"
        )
    if case["diverges"]:
        diverged = (by_role.get(WINNER) or {}).get("diverged_equal")
        seen = "the compare found them different; " if diverged is False else ""
        return f"{case['outcome']} ({seen}fixed)"
    return case["outcome"]


def report(records, cases_list, peers, final_equal=None):
    """The closing table: one row per conflict type - the counters before -> after on each node, the log
    line, the resolution, equal after the case - and a last line for the final comparison.

    ``records``: one per node and case - ``case``, ``host``, ``role``, ``before`` and ``after`` (counters),
    ``log`` (per type, :func:`observe`), ``log_available``, ``log_source``, ``skip_lsn`` (winner, stopping
    cases), ``diverged_equal`` (diverging cases: the compare before the fix) and ``equal`` (the compare after the
    case). ``peers``: ``[winner, loser]``.
    """
    winner, loser = peers[0], peers[1]
    header = ("conflict", "counter before->after", "log line", "resolution", "equal")
    rows = []
    for case in cases_list:
        mine = [r for r in records if r["case"] == case["name"]]
        types = []
        for role in ROLES:
            for kind in case["expect"].get(role) or {}:
                if kind not in types:
                    types.append(kind)
        for kind in types:
            counters = []
            lines = []
            for host in (winner, loser):
                record = next((r for r in mine if r["host"] == host), None)
                if record is None:
                    counters.append(f"{host} -")
                    continue
                counters.append(f"{host} {record['before'].get(kind, 0)}->{record['after'].get(kind, 0)}")
                if kind in (case["expect"].get(record["role"]) or {}):
                    entry = (record.get("log") or {}).get(kind)
                    if entry:
                        lines.append(f"{host}: {entry['line']}")
                    elif not record.get("log_available"):
                        lines.append(f"{host}: log not readable ({record.get('log_source')})")
                    else:
                        lines.append(f"{host}: not found in the log")
            equal = all(r.get("equal") for r in mine) if mine else False
            rows.append(
                (
                    kind,
                    ", ".join(counters),
                    " / ".join(lines),
                    _resolution(case, mine, winner, loser),
                    "yes" if equal else "NO",
                )
            )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if final_equal is not None:
        lines.append(
            f"pair {winner} <-> {loser}: "
            + ("equal in both directions (compare: counts and checksums)" if final_equal else "NOT EQUAL")
        )
    return lines


def plan(table=DEFAULT_TABLE, winner="winner", loser="loser", repair_origin=DEFAULT_REPAIR_ORIGIN):
    """Everything the playbook runs as SQL: ``setup`` (both nodes), ``seed`` (per role) and ``cases``."""
    return {
        "table": table_name(table),
        "setup": setup_sql(table, repair_origin),
        "seed": {role: seed_sql(role, table, winner, loser) for role in ROLES},
        "cases": cases(table, winner, loser, repair_origin),
    }
