# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Sequences across a publisher and a subscriber: which ones, their values, the plan, the gap.

Logical replication does not replicate sequence values (before PostgreSQL 19): after a cutover the
subscriber's sequences hand out values the publisher has used already. This file holds

* the catalog reader - :func:`read_sequences` is the ONLY SQL of the collection that reads sequence
  state (``pg_sequences``' ``last_value``: ``NULL`` when the sequence was never used, or when the
  role has neither ``SELECT`` nor ``USAGE`` on it, which the reader tells apart);
* the discovery of the sequences that belong to published tables (:func:`publication_sequences`)
  and of the publications a subscriber subscribes to (:func:`subscribed_publications`);
* the planner (:func:`plan_sequences`): publisher value + margin, never backwards unless asked;
* the gap for ``replication_info``/``make status`` (:func:`sequence_gaps`, :func:`check_sequence_gaps`);
* the version gate of PostgreSQL 19's native ``ALTER SUBSCRIPTION ... REFRESH SEQUENCES``
  (:func:`method_problem`).

Values are compared in the sequence's direction (its ``increment_by``): "ahead" for a descending
sequence means a lower value. A sequence that was never used is at its start: its next value is
``start_value``, as if its last value were ``start_value - increment_by``.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import fetch_rows
from ansible_collections.inventium.logical_replication.plugins.module_utils._checks import finding
from ansible_collections.inventium.logical_replication.plugins.module_utils._subscriptions import (
    subscription_publications,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import NATIVE_SEQUENCES_MAJOR
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    APPLICATION_NAME,
    PgConnectionError,
    connect_publisher,
    format_db_error,
    psycopg,
    sql,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import (
    ConninfoError,
    conninfo_secrets,
    parse_conninfo,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (
    IdentifierError,
    QualifiedName,
    parse_identifier,
    parse_qualified_name,
    quote_ident,
)

METHODS = ("setval", "native")

# Actions of a planned sequence (RV sequences[].action of the module).
SET = "set"  # the subscriber is behind: moved forward to the publisher's value (+ margin)
SET_BACKWARDS = "set_backwards"  # the subscriber was ahead and allow_backwards moved it back
IN_SYNC = "none"  # the subscriber is at the desired value already
AHEAD = "ahead"  # the subscriber is ahead: left alone (allow_backwards would move it back)
UNUSED = "unused"  # never used on the publisher: nothing to copy

SEQUENCE_GAP_HINT = (
    "Sequence values are not replicated: before a cutover (writes moving to the subscriber) run "
    "playbooks/sync_sequences.yml (module inventium.logical_replication.sequences), optionally with "
    "-e sync_sequences_margin=N, or the subscriber hands out ids the publisher has used already."
)
SEQUENCE_MISSING_HINT = (
    "Create the sequence on the subscriber (the schema is not replicated: a table created without its "
    "serial/identity column's sequence, or a sequence created on the publisher later), then sync the values "
    "with playbooks/sync_sequences.yml."
)
SEQUENCE_UNREADABLE_HINT = (
    "The role reading the publisher needs SELECT (or USAGE) on the sequence to see its value: "
    "GRANT SELECT ON SEQUENCE <name> TO <role> on the publisher."
)


class SequenceError(ValueError):
    """Bad input or a state the module cannot plan for; ``str()`` is the message for the user."""


# ----------------------------------------------------------------------------------------------
# names and options
# ----------------------------------------------------------------------------------------------


def parse_sequence_names(values, option="sequences"):
    """``[QualifiedName, ...]`` from the option's list (``seq`` -> ``public.seq``); raises :class:`SequenceError`."""
    names = []
    for index, value in enumerate(values or []):
        try:
            name = parse_qualified_name(value)
        except IdentifierError as exc:
            raise SequenceError(f"{option}[{index}]: {exc}") from None
        if name in names:
            raise SequenceError(f"{option}[{index}]: sequence {name} is listed more than once")
        names.append(name)
    return names


def parse_publication_names(values, option="publications"):
    """Publication names (SQL identifiers, folded like PostgreSQL does); raises :class:`SequenceError`."""
    names = []
    for index, value in enumerate(values or []):
        try:
            name = parse_identifier(value)
        except IdentifierError as exc:
            raise SequenceError(f"{option}[{index}]: {exc}") from None
        if name not in names:
            names.append(name)
    return names


def method_problem(method, major, margin=0, sequences=None):
    """Why ``method`` cannot run on a subscriber of major ``major`` with these options, or ``None``.

    ``native`` is PostgreSQL 19's ``ALTER SUBSCRIPTION ... REFRESH SEQUENCES``: the subscriber's
    sequence synchronization worker copies the values of the sequences the subscription has (published
    ``FOR ALL SEQUENCES``) as they are - no margin, no list of its own.
    """
    if method not in METHODS:
        return f"method must be one of {', '.join(METHODS)}, got {method!r}"
    if method == "native":
        if major < NATIVE_SEQUENCES_MAJOR:
            return (
                f"option method=native requires PostgreSQL >= {NATIVE_SEQUENCES_MAJOR} on the subscriber "
                f"(server is {major}): use method=setval"
            )
        if margin:
            return "option margin cannot be used with method=native (PostgreSQL copies the values as they are)"
        if sequences:
            return (
                "option sequences cannot be used with method=native (REFRESH SEQUENCES refreshes every "
                "sequence of the subscription)"
            )
    return None


# ----------------------------------------------------------------------------------------------
# the publisher connection
# ----------------------------------------------------------------------------------------------


def publisher_params(publisher=None, conninfo=None):
    """libpq keywords of the ``publisher`` option (a dict) or the ``conninfo`` option (a string).

    The session is the module's own: its ``application_name`` is the collection's, not the one meant for
    the subscription's walsender. Raises :class:`SequenceError` for a connection string that does not parse.
    """
    if conninfo is not None:
        try:
            params = parse_conninfo(conninfo)
        except ConninfoError as exc:
            raise SequenceError(f"conninfo: {exc}") from None
    else:
        params = {k: v for k, v in (publisher or {}).items() if v is not None}
    params["application_name"] = APPLICATION_NAME
    return params


def publisher_secrets(publisher=None, conninfo=None):
    """The values to redact from the output for these publisher options."""
    out = conninfo_secrets(publisher or {})
    if conninfo:
        out.append(conninfo)
        try:
            out.extend(conninfo_secrets(parse_conninfo(conninfo)))
        except ConninfoError:
            pass
    return out


# ----------------------------------------------------------------------------------------------
# catalog reader (the only SQL reading sequence state)
# ----------------------------------------------------------------------------------------------

# pg_sequences for the value (its last_value is NULL both for a sequence never used and for one the
# role may not read - has_sequence_privilege tells them apart), pg_class for "exists but is no sequence".
_READ_SEQUENCES = """
SELECT q.ord, q.schema_name, q.seq_name, c.relkind::text AS relkind,
       CASE WHEN c.relkind = 'S' THEN pg_catalog.has_sequence_privilege(c.oid, 'SELECT,USAGE') END AS readable,
       s.last_value, s.start_value, s.increment_by, s.min_value, s.max_value, s.cycle, s.data_type::text AS data_type
FROM unnest(%(schemas)s::text[], %(names)s::text[]) WITH ORDINALITY AS q (schema_name, seq_name, ord)
LEFT JOIN pg_catalog.pg_namespace AS n ON n.nspname = q.schema_name
LEFT JOIN pg_catalog.pg_class AS c ON c.relnamespace = n.oid AND c.relname = q.seq_name
LEFT JOIN pg_catalog.pg_sequences AS s ON s.schemaname = q.schema_name AND s.sequencename = q.seq_name
ORDER BY q.ord
"""

# A table's sequences: those owned by a column (serial: deptype 'a', identity: 'i') and those a column
# default calls (nextval('seq'): the default depends on it). The CTE ``tables`` (relid) comes first.
_SEQUENCES_OF_TABLES = """, sequences AS (
    SELECT d.refobjid AS relid, d.objid AS seq
    FROM pg_catalog.pg_depend AS d
    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
      AND d.deptype IN ('a', 'i') AND d.refobjid IN (SELECT relid FROM tables)
    UNION
    SELECT ad.adrelid, d.refobjid
    FROM pg_catalog.pg_attrdef AS ad
    JOIN pg_catalog.pg_depend AS d
      ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
         AND d.refclassid = 'pg_catalog.pg_class'::regclass
    WHERE ad.adrelid IN (SELECT relid FROM tables)
)
SELECT sequences.relid::bigint AS relid, n.nspname AS schema_name, c.relname AS seq_name
FROM sequences JOIN pg_catalog.pg_class AS c ON c.oid = sequences.seq AND c.relkind = 'S'
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
"""

# The tables of the publications (as pg_publication_tables lists them: FOR ALL TABLES, TABLES IN SCHEMA
# and partitions included) and their partition ancestors (a serial or identity column of a partitioned
# table belongs to the parent).
_PUBLISHED_TABLES = """
WITH published AS (
    SELECT pg_catalog.format('%%I.%%I', pt.schemaname, pt.tablename)::regclass AS relid
    FROM pg_catalog.pg_publication_tables AS pt
    WHERE pt.pubname = ANY(%(publications)s)
), tables AS (
    SELECT relid FROM published
    UNION
    -- (no rows for a table that is not a partition)
    SELECT a.relid FROM published CROSS JOIN LATERAL pg_catalog.pg_partition_ancestors(published.relid) AS a (relid)
)"""
_PUBLICATION_SEQUENCES = _PUBLISHED_TABLES + _SEQUENCES_OF_TABLES

_TABLE_SEQUENCES = "WITH tables AS (SELECT unnest(%(relids)s::oid[]) AS relid)" + _SEQUENCES_OF_TABLES

_PUBLICATIONS = "SELECT pubname FROM pg_catalog.pg_publication WHERE pubname = ANY(%(publications)s)"


def read_sequences(conn, names):
    """``{QualifiedName: state}`` for ``names`` on the server of ``conn`` (every name has an entry).

    ``state``: ``exists`` (a sequence of that name), ``kind`` (``relkind`` of what has the name, ``None``
    when nothing), ``readable`` (``SELECT`` or ``USAGE`` for the session's role), ``last_value`` (``None``:
    never used, or not readable), ``start_value``, ``increment_by``, ``min_value``, ``max_value``,
    ``cycle``, ``data_type``.
    """
    names = list(names)
    if not names:
        return {}
    rows = fetch_rows(conn, _READ_SEQUENCES, {"schemas": [n.schema for n in names], "names": [n.name for n in names]})
    out = {}
    for row in rows:
        name = QualifiedName(row["schema_name"], row["seq_name"])
        out[name] = {
            "exists": row["relkind"] == "S",
            "kind": row["relkind"],
            "readable": bool(row["readable"]),
            "last_value": row["last_value"] if row["readable"] else None,
            "start_value": row["start_value"],
            "increment_by": row["increment_by"],
            "min_value": row["min_value"],
            "max_value": row["max_value"],
            "cycle": row["cycle"],
            "data_type": row["data_type"],
        }
    return out


def publication_sequences(conn, publications):
    """The sequences of the publications' tables on the publisher of ``conn``, sorted.

    Raises :class:`SequenceError` naming the publications that do not exist there.
    """
    publications = list(publications)
    found = {row["pubname"] for row in fetch_rows(conn, _PUBLICATIONS, {"publications": publications})}
    missing = [p for p in publications if p not in found]
    if missing:
        raise SequenceError(
            "publication(s) {} do not exist on the publisher".format(", ".join(quote_ident(p) for p in missing))
        )
    rows = fetch_rows(conn, _PUBLICATION_SEQUENCES, {"publications": publications})
    # Sorted here, not by the database's collation: the same order on every server.
    return sorted({QualifiedName(row["schema_name"], row["seq_name"]) for row in rows})


def table_sequences(conn, relids):
    """``{relid: [QualifiedName, ...]}``: the sequences of each table (``oid``s) on the server of ``conn``;
    tables without one are left out. For the GRANT a newly published table's sequences need
    (``schema_change``'s ``added_table_sequences``)."""
    out = {}
    for row in fetch_rows(conn, _TABLE_SEQUENCES, {"relids": list(relids)}):
        out.setdefault(row["relid"], set()).add(QualifiedName(row["schema_name"], row["seq_name"]))
    return {relid: sorted(names) for relid, names in out.items()}


# ----------------------------------------------------------------------------------------------
# planner (pure)
# ----------------------------------------------------------------------------------------------


def _direction(state):
    return -1 if (state.get("increment_by") or 1) < 0 else 1


def position(state):
    """The sequence's last value in the planner's terms: ``last_value``, or, never used, the value before
    ``start_value`` (``start_value - increment_by``: the next value is the start)."""
    if state.get("last_value") is not None:
        return state["last_value"]
    return state["start_value"] - state["increment_by"]


def _display_state(state):
    """``last_value`` as the module reports it: ``None`` for a sequence never used."""
    return state.get("last_value")


def plan_sequences(names, publisher, subscriber, margin=0, allow_backwards=False):
    """The plan: one item per name, in order; raises :class:`SequenceError` listing every problem.

    ``publisher``/``subscriber``: :func:`read_sequences` results. An item: ``name`` (display form),
    ``publisher_value`` (``None``: never used there), ``subscriber_before``, ``subscriber_after``
    (``None``: never used), ``action`` (:data:`SET`, :data:`SET_BACKWARDS`, :data:`IN_SYNC`,
    :data:`AHEAD`, :data:`UNUSED`) and ``value`` (what ``setval`` sets, only for the set actions).
    Problems (nothing may be applied then): a sequence missing or unreadable on either side, a
    different direction, a value beyond the subscriber's bounds.
    """
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise SequenceError(f"margin must be a whole number >= 0, got {margin!r}")
    problems = []
    items = []
    for name in names:
        label = str(name)
        pub = publisher.get(name) or {"exists": False, "kind": None}
        sub = subscriber.get(name) or {"exists": False, "kind": None}
        bad = False
        for side, state in (("publisher", pub), ("subscriber", sub)):
            if not state["exists"]:
                what = "does not exist" if state["kind"] is None else f"is not a sequence (relkind {state['kind']})"
                problems.append(f"sequence {label} {what} on the {side}")
                bad = True
            elif not state["readable"]:
                problems.append(
                    f"sequence {label} cannot be read on the {side}: the role needs SELECT or USAGE on it "
                    f"(GRANT SELECT ON SEQUENCE {label} TO <role>)"
                )
                bad = True
        if bad:
            continue
        direction = _direction(sub)
        if _direction(pub) != direction:
            problems.append(
                f"sequence {label} counts up on one side and down on the other "
                f"(increment_by {pub['increment_by']} on the publisher, {sub['increment_by']} on the subscriber)"
            )
            continue
        item = {
            "name": label,
            "publisher_value": _display_state(pub),
            "subscriber_before": _display_state(sub),
            "subscriber_after": _display_state(sub),
            "action": IN_SYNC,
        }
        if pub["last_value"] is None:
            item["action"] = UNUSED
            items.append(item)
            continue
        desired = pub["last_value"] + direction * margin
        if not sub["min_value"] <= desired <= sub["max_value"]:
            problems.append(
                f"sequence {label}: the publisher's value {pub['last_value']} plus the margin {margin} is "
                f"{desired}, outside the subscriber's range {sub['min_value']} .. {sub['max_value']}"
            )
            continue
        ahead_by = direction * (position(sub) - desired)
        if ahead_by == 0:
            # Never used with its next value right after the desired one is as good as set.
            item["action"] = IN_SYNC
        elif ahead_by > 0 and not allow_backwards:
            item["action"] = AHEAD
        else:
            item["action"] = SET_BACKWARDS if ahead_by > 0 else SET
            item["value"] = desired
            item["subscriber_after"] = desired
        items.append(item)
    if problems:
        raise SequenceError("; ".join(problems))
    return items


def changes(plan):
    """The items of ``plan`` that set a value."""
    return [item for item in plan if item["action"] in (SET, SET_BACKWARDS)]


def plan_diff(plan):
    """``(before, after)``: sequence name -> subscriber value, for the module's diff."""
    return (
        {item["name"]: item["subscriber_before"] for item in plan},
        {item["name"]: item["subscriber_after"] for item in plan},
    )


# ----------------------------------------------------------------------------------------------
# the gap (for replication_info / make status)
# ----------------------------------------------------------------------------------------------


def gaps_from_states(names, publisher, subscriber):
    """Per name ``{name, publisher_value, subscriber_value, gap, state}`` from two :func:`read_sequences` results.

    ``gap``: how far the subscriber is behind the publisher, in the sequence's direction (positive:
    behind, ``0``: equal, negative: ahead; ``None`` when it cannot be computed). ``state``: ``ok``,
    ``missing`` (not on the subscriber), ``missing_on_publisher``, ``unreadable`` (a side the role may
    not read) or ``unused`` (never used on the publisher: no gap).
    """
    out = []
    for name in names:
        pub = publisher.get(name) or {"exists": False}
        sub = subscriber.get(name) or {"exists": False}
        entry = {
            "name": str(name),
            "publisher_value": pub.get("last_value"),
            "subscriber_value": sub.get("last_value"),
            "gap": None,
        }
        if not sub["exists"]:
            entry["state"] = "missing"
        elif not pub["exists"]:
            entry["state"] = "missing_on_publisher"
        elif not (pub["readable"] and sub["readable"]):
            entry["state"] = "unreadable"
        elif pub["last_value"] is None:
            entry["state"] = "unused"
            entry["gap"] = 0
        else:
            entry["state"] = "ok"
            entry["gap"] = _direction(pub) * (pub["last_value"] - position(sub))
        out.append(entry)
    return out


def sequence_gaps(publisher_conn, subscriber_conn, sequences=None, publications=None):
    """The sequence gap between a publisher and a subscriber, on two open psycopg connections.

    ``sequences``: names (``"schema.name"`` strings or ``QualifiedName``); default: the sequences of the
    tables of ``publications`` (names) on the publisher, and by default those are the publications of
    every subscription in the subscriber's database. Returns :func:`gaps_from_states`' list.
    Raises :class:`SequenceError` for bad names or publications missing on the publisher.
    """
    if sequences is None:
        if publications is None:
            publications = sorted({p for pubs in subscription_publications(subscriber_conn).values() for p in pubs})
        names = publication_sequences(publisher_conn, parse_publication_names(publications)) if publications else []
    else:
        names = [n if isinstance(n, QualifiedName) else parse_sequence_names([n])[0] for n in sequences]
    return gaps_from_states(names, read_sequences(publisher_conn, names), read_sequences(subscriber_conn, names))


def _listed(entries, limit=10):
    shown = [f"{e['name']} ({e['gap']} behind)" if e.get("gap") else e["name"] for e in entries[:limit]]
    text = ", ".join(shown)
    if len(entries) > limit:
        text += f" and {len(entries) - limit} more"
    return text


def check_sequence_gaps(gaps):
    """Findings (``_checks.finding``) for :func:`sequence_gaps`' list.

    ``error sequence_missing``: a sequence of a published table is missing on the subscriber (a cutover
    would fail on its first insert); ``warning sequence_unreadable``: a side cannot be read (privileges);
    ``info sequence_gap``: subscriber sequences behind the publisher (normal while replicating - they
    matter at cutover).
    """
    found = []
    missing = [g for g in gaps if g["state"] == "missing"]
    if missing:
        found.append(
            finding(
                "error",
                "sequence_missing",
                f"{len(missing)} sequence(s) of the published tables missing on the subscriber: {_listed(missing)}",
                SEQUENCE_MISSING_HINT,
            )
        )
    unreadable = [g for g in gaps if g["state"] == "unreadable"]
    if unreadable:
        found.append(
            finding(
                "warning",
                "sequence_unreadable",
                f"{len(unreadable)} sequence(s) whose value cannot be read: {_listed(unreadable)}",
                SEQUENCE_UNREADABLE_HINT,
            )
        )
    behind = [g for g in gaps if g["state"] == "ok" and g["gap"] > 0]
    if behind:
        found.append(
            finding(
                "info",
                "sequence_gap",
                f"{len(behind)} subscriber sequence(s) behind the publisher: {_listed(behind)}",
                SEQUENCE_GAP_HINT,
            )
        )
    return found


# ----------------------------------------------------------------------------------------------
# the module's run
# ----------------------------------------------------------------------------------------------

_SETVAL = "SELECT pg_catalog.setval(%s::regclass, %s, true)"


class SequenceSync:
    """The ``sequences`` module's steps on a :class:`~.pg_module.PgModule` connected to the subscriber."""

    def __init__(self, m):
        self.m = m
        p = m.params
        self.publisher = p.get("publisher")
        self.conninfo = p.get("conninfo")
        m.add_secret(*publisher_secrets(self.publisher, self.conninfo))
        self.method = p.get("method") or "setval"
        self.margin = p.get("margin") or 0
        self.allow_backwards = bool(p.get("allow_backwards"))
        # Names are checked before any connection is made.
        self.names = parse_sequence_names(p.get("sequences")) if p.get("sequences") is not None else None
        self.publications = (
            parse_publication_names(p.get("publications")) if p.get("publications") is not None else None
        )
        if self.margin < 0:
            raise SequenceError(f"margin must be >= 0, got {self.margin}")

    def run(self):
        m = self.m
        m.connect()
        m.require_versions("sequences module", [])
        problem = method_problem(self.method, m.server_major, self.margin, self.names)
        if problem:
            raise SequenceError(problem)
        if self.method == "native":
            self.run_native()
        else:
            self.run_setval()

    def _default_publications(self):
        subscribed = subscription_publications(self.m.conn)
        if not subscribed:
            raise SequenceError(
                f"no subscription in database {self.m.params.get('login_db') or '(default)'} of the subscriber: "
                "give publications or sequences"
            )
        return sorted({p for pubs in subscribed.values() for p in pubs})

    def run_setval(self):
        m = self.m
        publications = None
        if self.names is None:
            publications = self.publications if self.publications is not None else self._default_publications()
        params = publisher_params(self.publisher, self.conninfo)
        try:
            pub_conn = connect_publisher(params)
        except PgConnectionError as exc:
            raise SequenceError(str(exc)) from None
        try:
            names = self.names if self.names is not None else publication_sequences(pub_conn, publications)
            pub_states = read_sequences(pub_conn, names)
        except psycopg.Error as exc:
            raise SequenceError(format_db_error(exc, action="reading the publisher failed")) from None
        finally:
            pub_conn.close()
        try:
            sub_states = read_sequences(m.conn, names)
        except psycopg.Error as exc:
            raise SequenceError(format_db_error(exc, action="reading the subscriber failed")) from None
        plan = plan_sequences(names, pub_states, sub_states, self.margin, self.allow_backwards)
        for item in changes(plan):
            m.execute(_SETVAL, [item["name"], item["value"]])
        ahead = [item["name"] for item in plan if item["action"] == AHEAD]
        if ahead:
            m.warn(
                "subscriber sequence(s) ahead of the publisher's value{} left alone (allow_backwards=true would "
                "move them back): {}".format(f" plus the margin {self.margin}" if self.margin else "", ", ".join(ahead))
            )
        for item in plan:
            item.pop("value", None)
        result = {"sequences": plan}
        if publications is not None:
            result["publications"] = publications
        m.exit(changed=bool(changes(plan)), diff=plan_diff(plan), **result)

    def run_native(self):
        m = self.m
        subscribed = subscription_publications(m.conn)
        wanted = set(self.publications) if self.publications is not None else None
        names = [s for s, pubs in subscribed.items() if wanted is None or wanted & set(pubs)]
        if not names:
            raise SequenceError("no subscription in the subscriber's database subscribes to the publications")
        for name in names:
            m.execute(sql.SQL("ALTER SUBSCRIPTION {} REFRESH SEQUENCES").format(sql.Identifier(name)), autocommit=True)
        m.exit(changed=True, sequences=[], subscriptions=names)
