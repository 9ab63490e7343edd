# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Prove that a subscriber holds what the publisher publishes to it: per table, row count and checksum.

For every table of the node's subscription (``pg_subscription_rel``) the publisher side is read
through the subscription's publications as PostgreSQL applies them: only the published columns
(``pg_publication_tables.attnames``) and only the rows the row filters let through (ORed over the
publications; one publication without a filter means every row). The checksum is an
order-independent sum of the first 60 bits of each row's md5, so it needs no sort and no memory
proportional to the table. Both sessions use the same TimeZone, DateStyle and float output, so the
text of a row is the same on either server.

A table with a primary key (or a unique index over NOT NULL columns, without predicate or
expression) is compared in chunks of its key: the publisher's keys are walked in order to find
each chunk's last key (keyset, ``OFFSET chunk_rows - 1 LIMIT 1`` after the previous boundary), then
each key range is counted and summed on both sides, so no query aggregates more than a chunk and
the sums of the chunks add up to the whole table's checksum. Text-like key columns are ordered and
compared ``COLLATE "C"`` on both sides: servers of different majors or C libraries may sort a
language collation differently, which would put a row into different chunks. A differing chunk is
bisected on its rows down to one row per side: its first differing key range is reported. A
table without such a key is summed whole (method ``whole_table``), with a warning naming its size.

The comparison logic (:func:`compare_ranges`, :func:`narrow_difference`) works on a reader with
four operations (``digest``, ``key_at``, ``key_less`` and ``keyed``), so that it is tested without a
database (tests/unit/test_replication_compare.py); :class:`TableReader` is the SQL one.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import fetch_rows
from ansible_collections.inventium.logical_replication.plugins.module_utils._sequences import (
    publisher_params,
    publisher_secrets,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import COLUMN_LIST_MAJOR
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    PgConnectionError,
    connect,
    connect_publisher,
    format_db_error,
    psycopg,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (
    IdentifierError,
    parse_identifier,
    parse_qualified_name,
    quote_ident,
)

if psycopg is not None:
    from psycopg import sql
    from psycopg.rows import tuple_row
else:  # pragma: no cover - the module reports the missing library
    sql = tuple_row = None

_SESSION = (
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; SET IntervalStyle = 'postgres'; "
    "SET bytea_output = 'hex'; SET lc_monetary = 'C'"
)
# Nothing the comparison runs writes; the sessions say so, so that a mistake cannot either.
_READ_ONLY = "SET default_transaction_read_only = on"

_ATTEMPTS = 10
_RETRY_PAUSE = 0.35

DEFAULT_CHUNK_ROWS = 100000
"""Rows per chunk of a keyed table (the ``compare`` module's ``chunk_rows`` default)."""
DEFAULT_RETRIES = _ATTEMPTS - 1
"""Re-reads of a differing chunk before it counts as different (the ``compare`` module's ``retries`` default)."""

PUBLISHER, SUBSCRIBER = "publisher", "subscriber"
CHUNKED, WHOLE_TABLE = "chunked", "whole_table"

# psycopg's placeholders are written as NUL, which no SQL text or identifier can contain: the rendered query's
# own '%' (in a row filter's LIKE pattern, in a name) are escaped, then NUL becomes %s (see _render).
_P = "\x00"
_BISECT_STEPS = 200

_PUBLISHED = """
SELECT pt.schemaname, pt.tablename, pt.attnames, pt.rowfilter
FROM pg_catalog.pg_publication_tables AS pt
WHERE pt.pubname = ANY(%s)
"""

# Before column lists and row filters (PostgreSQL 13, 14) a publication sends every column and row.
_PUBLISHED_ALL_COLUMNS = """
SELECT pt.schemaname, pt.tablename,
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute AS a
             WHERE a.attrelid = (quote_ident(pt.schemaname) || '.' || quote_ident(pt.tablename))::regclass
               AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
             ORDER BY a.attnum) AS attnames,
       NULL::text AS rowfilter
FROM pg_catalog.pg_publication_tables AS pt
WHERE pt.pubname = ANY(%s)
"""

_SUBSCRIPTIONS = """
SELECT s.subname::text AS name, s.subpublications::text[] AS publications, s.subenabled AS enabled,
       s.subslotname::text AS slot,
       COALESCE((SELECT json_agg(json_build_object('schema', n.nspname, 'table', c.relname, 'state', r.srsubstate))
                 FROM pg_catalog.pg_subscription_rel AS r
                 JOIN pg_catalog.pg_class AS c ON c.oid = r.srrelid
                 JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
                 WHERE r.srsubid = s.oid), '[]'::json) AS tables
FROM pg_catalog.pg_subscription AS s
WHERE s.subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
ORDER BY s.subname
"""

_EXISTING_PUBLICATIONS = "SELECT pubname::text FROM pg_catalog.pg_publication WHERE pubname = ANY(%s)"
_SLOT = "SELECT database::text, current_database()::text FROM pg_catalog.pg_replication_slots WHERE slot_name = %s"

# Columns of a table on one side: the key's types (cast of the bound values) and which are collatable.
_COLUMNS = """
SELECT a.attname::text AS name, pg_catalog.format_type(a.atttypid, NULL) AS type, a.attcollation <> 0 AS collatable
FROM pg_catalog.pg_attribute AS a
JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

# Keys a table can be chunked by: its primary key, else a unique index that PostgreSQL guarantees to be
# unique and total over every row - valid, no predicate, no expression, every key column NOT NULL.
_KEYS = """
SELECT pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(c.oid)) AS size,
       COALESCE((
         SELECT json_agg(json_build_object('index', ic.relname, 'columns', k.columns)
                         ORDER BY i.indisprimary DESC, i.indisreplident DESC, cardinality(k.columns), ic.relname)
         FROM pg_catalog.pg_index AS i
         JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid
         CROSS JOIN LATERAL (
           SELECT array_agg(a.attname::text ORDER BY x.ord) AS columns, bool_and(a.attnotnull) AS not_null
           FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS x (attnum, ord)
           JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = x.attnum
           WHERE x.ord <= i.indnkeyatts
         ) AS k
         WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
           AND k.not_null AND cardinality(k.columns) = i.indnkeyatts
       ), '[]'::json) AS keys
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""


class CompareError(ValueError):
    """Bad input (an unknown subscription or table): nothing was compared."""


def _render(conn, query):
    """``query`` (str or Composable, placeholders written as ``_P``) as the text psycopg executes with parameters."""
    text = query if isinstance(query, str) else query.as_string(conn)
    return text.replace("%", "%%").replace(_P, "%s")


def _fetch(conn, query, params=None):
    """Rows (tuples) of ``query``; its placeholders are ``_P``. Without parameters the text is sent as it is."""
    with conn.cursor(row_factory=tuple_row) as cur:
        if params is None:
            cur.execute(query if isinstance(query, str) else query.as_string(conn))
        else:
            cur.execute(_render(conn, query), list(params))
        return cur.fetchall() if cur.description is not None else []


def _digest_query(schema, table, columns, row_filter, where=None):
    row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    query = sql.SQL(
        "SELECT count(*), COALESCE(sum(('x' || substr(md5({row}), 1, 15))::bit(60)::bigint), 0)::text FROM {table}"
    ).format(row=row, table=sql.Identifier(schema, table))
    conditions = []
    if row_filter:
        # The filter is PostgreSQL's own deparsed expression (pg_publication_tables.rowfilter), not user input.
        conditions.append(sql.SQL("({})").format(sql.SQL(row_filter)))
    if where is not None:
        conditions.append(where)
    if conditions:
        query = sql.SQL("{} WHERE {}").format(query, sql.SQL(" AND ").join(conditions))
    return query


def published_tables(pub_conn, publications):
    """``{(schema, table): {"columns": [...], "filter": sql text or None}}`` as the publications publish them."""
    major = pub_conn.info.server_version // 10000
    query = _PUBLISHED if major >= COLUMN_LIST_MAJOR else _PUBLISHED_ALL_COLUMNS
    out = {}
    for schema, table, attnames, rowfilter in _fetch(pub_conn, query.replace("%s", _P), [list(publications)]):
        entry = out.setdefault((schema, table), {"columns": [], "filters": []})
        for column in attnames or []:
            if column not in entry["columns"]:
                entry["columns"].append(column)
        entry["filters"].append(rowfilter)
    for entry in out.values():
        filters = entry.pop("filters")
        entry["filter"] = None if any(f is None for f in filters) else " OR ".join(f"({f})" for f in filters)
    return out


def wait_caught_up(pub_conn, slot, timeout, application_name=None):
    """Wait until the node's walsender has replayed the publisher's current WAL position; seconds taken.

    The walsender is the one holding ``slot`` or, as a subscription's is named by default, the one whose
    ``application_name`` is ``application_name`` (default ``slot``). The slot's ``confirmed_flush_lsn`` counts
    too: a role without ``pg_read_all_stats`` sees no ``replay_lsn`` of another role's walsender, but every role
    sees the slots.
    """
    start = time.monotonic()
    target = _fetch(pub_conn, "SELECT pg_current_wal_lsn()::text")[0][0]
    query = (
        "SELECT (SELECT bool_or(s.replay_lsn >= %s::pg_lsn) FROM pg_catalog.pg_stat_replication AS s"
        "        WHERE s.application_name = %s"
        "        OR s.pid = (SELECT active_pid FROM pg_catalog.pg_replication_slots WHERE slot_name = %s))"
        " OR (SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_catalog.pg_replication_slots WHERE slot_name = %s)"
    ).replace("%s", _P)
    while True:
        row = _fetch(pub_conn, query, (target, application_name or slot, slot, target, slot))
        if row and row[0][0]:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{slot} did not catch up with {target} within {timeout:.0f} s")
        time.sleep(0.2)


# ----------------------------------------------------------------------------------------------
# one table, through a reader (pure logic)
# ----------------------------------------------------------------------------------------------


def _differs(pub, sub):
    return tuple(pub) != tuple(sub)


def _digests(reader, lo, hi):
    """``(publisher, subscriber)`` digests of ``(lo, hi]``: at once when the reader can (``digest_both``)."""
    both = getattr(reader, "digest_both", None)
    if both is not None:
        return both(lo, hi)
    return reader.digest(PUBLISHER, lo, hi), reader.digest(SUBSCRIBER, lo, hi)


def _measure(reader, lo, hi, attempts, pause, sleep):
    """``(publisher, subscriber)`` ``(rows, checksum)`` of the range; re-read while they differ, ``attempts`` reads."""
    for attempt in range(max(attempts, 1)):
        pub, sub = _digests(reader, lo, hi)
        if not _differs(pub, sub) or attempt >= attempts - 1:
            return pub, sub
        sleep(pause)
    return pub, sub  # pragma: no cover - the loop returns


def _minus(whole, part):
    return (whole[0] - part[0], whole[1] - part[1])


def _split(reader, lo, hi, pub, sub, mid):
    """The half of ``(lo, hi]`` split at ``mid`` that differs (lower first), with its digests; ``None``: neither."""
    low_pub, low_sub = _digests(reader, lo, mid)
    if _differs(low_pub, low_sub):
        return {"lo": lo, "hi": mid, "pub": low_pub, "sub": low_sub}
    high_pub, high_sub = _minus(pub, low_pub), _minus(sub, low_sub)
    if _differs(high_pub, high_sub):
        return {"lo": mid, "hi": hi, "pub": high_pub, "sub": high_sub}
    return None  # the difference went away (a concurrent change): keep the range that showed it


def _narrower(reader, lo, hi, pub, sub):
    """One bisection step of :func:`narrow_difference`: the narrower differing range, or ``None``."""
    rows = max(pub[0], sub[0])
    if rows <= 1:
        return None
    side = PUBLISHER if pub[0] >= sub[0] else SUBSCRIBER
    for offset in dict.fromkeys((rows // 2 - 1, 0)):
        mid = reader.key_at(side, lo, hi, offset)
        if mid is None:
            return None
        half = _split(reader, lo, hi, pub, sub, mid)
        if half is None:
            return None
        if (half["pub"][0], half["sub"][0]) != (pub[0], sub[0]):
            return half
        # no narrower at the middle: every row from there on has the split key; try the first key
    return None


def narrow_difference(reader, lo, hi, pub, sub):
    """Bisect the differing key range ``(lo, hi]`` (``None``: unbounded) whose digests are ``pub``/``sub``.

    Each step splits the range at the middle row of the side that has more rows in it and keeps the lower
    half if it differs, else the upper half (its digests are the range's minus the lower half's), until a side
    has at most one row. When the middle key is the range's last (the subscriber may hold a key several
    times), the split is at the range's first key instead; when that is the last too, the range is one key.
    Returns ``{from_key, to_key, publisher_rows, subscriber_rows}``: the smallest and largest key found in
    the final range on either side (inclusive; the range's own bounds when it holds no row any more).
    """
    for _step in range(_BISECT_STEPS):
        narrower = _narrower(reader, lo, hi, pub, sub)
        if not narrower:
            break
        lo, hi, pub, sub = narrower["lo"], narrower["hi"], narrower["pub"], narrower["sub"]
    first = _extreme_key(reader, lo, hi, descending=False)
    last = _extreme_key(reader, lo, hi, descending=True)
    return {
        "from_key": first if first is not None else lo,
        "to_key": last if last is not None else hi,
        "publisher_rows": pub[0],
        "subscriber_rows": sub[0],
    }


def _extreme_key(reader, lo, hi, descending):
    keys = [k for k in (reader.key_at(side, lo, hi, 0, descending) for side in (PUBLISHER, SUBSCRIBER)) if k]
    if len(keys) < 2:
        return keys[0] if keys else None
    first_is_less = reader.key_less(keys[0], keys[1])
    return keys[1 if first_is_less == descending else 0]


def compare_ranges(reader, chunk_rows, attempts=_ATTEMPTS, pause=_RETRY_PAUSE, sleep=time.sleep):
    """Compare one table through ``reader``: by chunks of ``chunk_rows`` publisher rows if it is ``keyed``, else whole.

    The chunks are ``(None, b1], (b1, b2], ..., (bn, None)``: together they cover every key on either side,
    also the subscriber's rows outside the publisher's keys and rows added after a boundary was found. A
    differing chunk is read ``attempts`` times (a row changing right now arrives within milliseconds) until
    the table's first persistent difference; later chunks are read once. The first differing chunk is
    narrowed (:func:`narrow_difference`). Returns ``{chunks, differing_chunks, publisher_rows,
    subscriber_rows, publisher_checksum, subscriber_checksum (text), first_difference}``.
    """
    totals = {PUBLISHER: [0, 0], SUBSCRIBER: [0, 0]}
    chunks = differing = 0
    first = None
    lo = None
    while True:
        hi = reader.key_at(PUBLISHER, lo, None, chunk_rows - 1) if reader.keyed else None
        pub, sub = _measure(reader, lo, hi, attempts if not differing else 1, pause, sleep)
        chunks += 1
        for side, (count, checksum) in ((PUBLISHER, pub), (SUBSCRIBER, sub)):
            totals[side][0] += count
            totals[side][1] += checksum
        if _differs(pub, sub):
            differing += 1
            if first is None and reader.keyed:
                first = narrow_difference(reader, lo, hi, pub, sub)
        if hi is None:
            break
        lo = hi
    return {
        "chunks": chunks,
        "differing_chunks": differing,
        "publisher_rows": totals[PUBLISHER][0],
        "subscriber_rows": totals[SUBSCRIBER][0],
        "publisher_checksum": str(totals[PUBLISHER][1]),
        "subscriber_checksum": str(totals[SUBSCRIBER][1]),
        "first_difference": first,
    }


# ----------------------------------------------------------------------------------------------
# one table, in SQL
# ----------------------------------------------------------------------------------------------


def choose_key(candidates, published_columns):
    """The first candidate key (``[{index, columns}]``, best first) whose columns are all published, or ``None``."""
    published = set(published_columns)
    for candidate in candidates:
        if candidate["columns"] and set(candidate["columns"]) <= published:
            return candidate
    return None


class TableReader:
    """:func:`compare_ranges`' reader over SQL: one table on the publisher (row filter applied) and the subscriber.

    ``key``: ``{side: [(column, type, collatable), ...]}`` in key order (each side's own column types), or
    ``None`` for a whole-table comparison. Keys travel as lists of text (``column::text``) and are bound as
    parameters cast to the column's type on each side.
    """

    def __init__(self, conns, schema, table, columns, row_filter, key=None):
        self.conns = conns
        self.schema, self.table = schema, table
        self.columns = columns
        self.filters = {PUBLISHER: row_filter, SUBSCRIBER: None}
        self.key = key
        self.keyed = bool(key)

    def _order(self, side):
        # Qualified: in ORDER BY a bare name would be the output column (the key as text), not the table's.
        out = []
        for column, _type, collatable in self.key[side]:
            expr = sql.Identifier(self.schema, self.table, column)
            out.append(sql.SQL('{} COLLATE "C"').format(expr) if collatable else expr)
        return out

    def _values(self, side):
        return [sql.SQL("CAST({} AS {})").format(sql.SQL(_P), sql.SQL(t)) for _c, t, _coll in self.key[side]]

    def _compare(self, side, op):
        left, right = self._order(side), self._values(side)
        if len(left) == 1:
            return sql.SQL("{} {} {}").format(left[0], sql.SQL(op), right[0])
        return sql.SQL("ROW({}) {} ROW({})").format(sql.SQL(", ").join(left), sql.SQL(op), sql.SQL(", ").join(right))

    def _range(self, side, lo, hi):
        parts, params = [], []
        if self.filters[side]:
            parts.append(sql.SQL("({})").format(sql.SQL(self.filters[side])))
        if lo is not None:
            parts.append(self._compare(side, ">"))
            params += lo
        if hi is not None:
            parts.append(self._compare(side, "<="))
            params += hi
        where = sql.SQL(" AND ").join(parts) if parts else None
        return where, params

    def digest(self, side, lo, hi):
        where, params = self._range(side, lo, hi) if self.keyed else (None, [])
        filters = self.filters[side] if not self.keyed else None
        query = _digest_query(self.schema, self.table, self.columns, filters, where)
        count, checksum = _fetch(self.conns[side], query, params)[0]
        return count, int(checksum)

    def digest_both(self, lo, hi):
        # The two servers work at the same time: during a switchover this is write downtime.
        with ThreadPoolExecutor(max_workers=1) as pool:
            publisher = pool.submit(self.digest, PUBLISHER, lo, hi)
            subscriber = self.digest(SUBSCRIBER, lo, hi)
            return publisher.result(), subscriber

    def key_at(self, side, lo, hi, offset, descending=False):
        where, params = self._range(side, lo, hi)
        direction = sql.SQL(" DESC" if descending else "")
        query = sql.SQL("SELECT {keys} FROM {table}{where} ORDER BY {order} OFFSET {offset} LIMIT 1").format(
            keys=sql.SQL(", ").join(
                sql.SQL("CAST({} AS text)").format(sql.Identifier(c)) for c, _t, _x in self.key[side]
            ),
            table=sql.Identifier(self.schema, self.table),
            where=sql.SQL(" WHERE {}").format(where) if where is not None else sql.SQL(""),
            order=sql.SQL(", ").join(sql.SQL("{}{}").format(e, direction) for e in self._order(side)),
            offset=sql.SQL(_P),
        )
        rows = _fetch(self.conns[side], query, [*params, offset])
        return list(rows[0]) if rows else None

    def key_less(self, a, b):
        values = self._values(PUBLISHER)
        left = [
            sql.SQL('{} COLLATE "C"').format(value) if self.key[PUBLISHER][i][2] else value
            for i, value in enumerate(values)
        ]
        query = sql.SQL("SELECT ROW({}) < ROW({})").format(sql.SQL(", ").join(left), sql.SQL(", ").join(values))
        return bool(_fetch(self.conns[PUBLISHER], query, [*a, *b])[0][0])


def _columns(conn, schema, table):
    return {r["name"]: r for r in fetch_rows(conn, _COLUMNS, (schema, table))}


def table_result(schema, table, reason=None):
    """A table's entry in the ``compare`` module's ``tables``, before (or instead of) its comparison."""
    return {
        "table": f"{quote_ident(schema)}.{quote_ident(table)}",
        "equal": False,
        "method": None,
        "key": [],
        "chunks": 0,
        "differing_chunks": 0,
        "publisher_rows": None,
        "subscriber_rows": None,
        "publisher_checksum": None,
        "subscriber_checksum": None,
        "first_difference": None,
        "seconds": 0.0,
        "reason": reason,
    }


def compare_table(conns, schema, table, entry, chunk_rows=DEFAULT_CHUNK_ROWS, attempts=_ATTEMPTS):
    """Compare one published table (``entry``: :func:`published_tables`' value) on both sides.

    Returns ``(result, warning)``: ``result`` is the ``compare`` module's table entry; ``warning`` is text when
    the table had to be compared whole (no usable key), else ``None``. A table missing on the subscriber or
    lacking published columns there is a result with ``equal`` false and a ``reason``, not an error.
    """
    start = time.monotonic()
    result = table_result(schema, table)
    name = result["table"]
    sub_columns = _columns(conns[SUBSCRIBER], schema, table)
    missing = [c for c in entry["columns"] if c not in sub_columns]
    if not sub_columns:
        result["reason"] = "missing on the subscriber"
    elif missing:
        result["reason"] = "published columns missing on the subscriber: " + ", ".join(missing)
    if result["reason"]:
        return result, None
    info = fetch_rows(conns[PUBLISHER], _KEYS, (schema, table))[0]
    chosen = choose_key(info["keys"], entry["columns"])
    warning = None
    key = None
    if chosen is None:
        warning = (
            f"{name} has no primary key and no unique index over NOT NULL published columns (without predicate or "
            f"expression): compared with one whole-table checksum, which reads all of its {info['size']} at once"
        )
    else:
        pub_columns = _columns(conns[PUBLISHER], schema, table)
        key = {
            side: [(c, cols[c]["type"], cols[c]["collatable"]) for c in chosen["columns"]]
            for side, cols in ((PUBLISHER, pub_columns), (SUBSCRIBER, sub_columns))
        }
        result["key"] = list(chosen["columns"])
    reader = TableReader(conns, schema, table, entry["columns"], entry["filter"], key)
    result.update(compare_ranges(reader, chunk_rows, attempts))
    result["method"] = CHUNKED if key else WHOLE_TABLE
    result["equal"] = not result["differing_chunks"]
    result["seconds"] = round(time.monotonic() - start, 3)
    return result, warning


# ----------------------------------------------------------------------------------------------
# a subscription
# ----------------------------------------------------------------------------------------------


def read_subscriptions(conn):
    """The subscriptions of the connected database: ``{name: {publications, enabled, slot, tables}}``."""
    out = {}
    for row in fetch_rows(conn, _SUBSCRIPTIONS):
        tables = {(t["schema"], t["table"]): t["state"] for t in row["tables"]}
        out[row["name"]] = {
            "publications": list(row["publications"]),
            "enabled": row["enabled"],
            "slot": row["slot"],
            "tables": tables,
        }
    return out


def _names(names):
    return ", ".join(quote_ident(n) for n in names) or "none"


def pick_subscription(subscriptions, name=None, database=None):
    """The subscription name to compare: ``name`` (SQL identifier) or the database's only one."""
    where = f"database {database}" if database else "this database"
    if name is None:
        if len(subscriptions) == 1:
            return next(iter(subscriptions))
        raise CompareError(
            f"{where} has {len(subscriptions)} subscriptions ({_names(sorted(subscriptions))}): "
            "name the one to compare in the option subscription"
        )
    try:
        wanted = parse_identifier(name)
    except IdentifierError as exc:
        raise CompareError(f"subscription: {exc}") from None
    if wanted not in subscriptions:
        raise CompareError(
            f"subscription {quote_ident(wanted)} does not exist in {where}; its subscriptions: "
            f"{_names(sorted(subscriptions))}"
        )
    return wanted


def select_tables(published, tables, subscription):
    """The published ``(schema, table)`` keys to compare: all (``tables`` empty or ``None``), or the names in ``tables``
    (each must be published)."""
    if not tables:
        return sorted(published)
    wanted, unknown = [], []
    for text in tables:
        try:
            key = tuple(parse_qualified_name(text))
        except IdentifierError as exc:
            raise CompareError(f"tables: {exc}") from None
        if key not in published:
            unknown.append(text)
        elif key not in wanted:
            wanted.append(key)
    if unknown:
        raise CompareError(
            "tables: not published to subscription {} (by its publications on the publisher): {}".format(
                quote_ident(subscription), ", ".join(unknown)
            )
        )
    return wanted


def _describe(result):
    name = result["table"]
    if result["reason"]:
        return f"{name}: {result['reason']}"
    text = (
        f"{name}: {result['differing_chunks']} of {result['chunks']} chunk(s) differ - publisher "
        f"{result['publisher_rows']} rows / {result['publisher_checksum']}, subscriber {result['subscriber_rows']} "
        f"rows / {result['subscriber_checksum']}"
    )
    first = result["first_difference"]
    if first:
        columns = ", ".join(quote_ident(c) for c in result["key"])
        keys = [", ".join(k) if k is not None else "unbounded" for k in (first["from_key"], first["to_key"])]
        where = f"({columns})=({keys[0]})" if keys[0] == keys[1] else f"({columns}) from ({keys[0]}) to ({keys[1]})"
        text += (
            f"; first difference at key {where}: publisher {first['publisher_rows']} row(s), "
            f"subscriber {first['subscriber_rows']}"
        )
    return text


def _slot_problems(pub_conn, subscription, slot):
    """The subscription's slot missing on the publisher, or in another database: a wrong ``publisher`` (or a lost
    slot) - found before waiting ``timeout`` for a walsender that will never come."""
    if slot is None:
        return []
    rows = _fetch(pub_conn, _SLOT.replace("%s", _P), [slot])
    if not rows:
        return [
            f"slot {quote_ident(slot)} of subscription {quote_ident(subscription)} does not exist on the publisher "
            "(is the publisher option this subscription's publisher?)"
        ]
    database, current = rows[0]
    if database != current:
        return [f"slot {quote_ident(slot)} is in the publisher's database {database}, not in {current}"]
    return []


def _compare_one(pub_conn, sub_conn, key, entry, subscribed, chunk_rows, retries):
    schema, table = key
    if key not in subscribed:
        if _columns(sub_conn, schema, table):
            reason = "published but not in the subscription (ALTER SUBSCRIPTION ... REFRESH PUBLICATION adds it)"
        else:
            reason = "missing on the subscriber (create it, then ALTER SUBSCRIPTION ... REFRESH PUBLICATION)"
        return table_result(schema, table, reason), None
    try:
        return compare_table({PUBLISHER: pub_conn, SUBSCRIBER: sub_conn}, schema, table, entry, chunk_rows, retries + 1)
    except psycopg.Error as exc:
        return table_result(schema, table, format_db_error(exc, action="comparing failed")), None


def compare_subscription(
    pub_conn,
    sub_conn,
    subscription=None,
    tables=None,
    chunk_rows=DEFAULT_CHUNK_ROWS,
    wait=True,
    timeout=300.0,
    retries=DEFAULT_RETRIES,
    database=None,
):
    """Compare every table of a subscription (or those of ``tables``) on the subscriber ``sub_conn`` with the publisher.

    Raises :class:`CompareError` - before anything is compared or waited for - for an unknown subscription (the
    message lists the database's subscriptions), none given while the database has several, or a name in
    ``tables`` that the subscription's publications do not publish. Everything else is reported:
    ``{subscription, publications, equal, tables, caught_up_seconds, problems, warnings, seconds}``; ``equal``
    is true only when every table is equal and there is no problem (the subscription disabled, tables not
    ready, not caught up within ``timeout``, a publication or table missing).
    """
    start = time.monotonic()
    subscriptions = read_subscriptions(sub_conn)
    name = pick_subscription(subscriptions, subscription, database)
    sub = subscriptions[name]
    published = published_tables(pub_conn, sub["publications"])
    selected = select_tables(published, tables, name)
    problems, warnings = [], []
    existing = _fetch(pub_conn, _EXISTING_PUBLICATIONS.replace("%s", _P), [sub["publications"]])
    for publication in sorted(set(sub["publications"]) - {r[0] for r in existing}):
        problems.append(f"publication {quote_ident(publication)} does not exist on the publisher")
    problems += _slot_problems(pub_conn, name, sub["slot"])
    not_ready = {k: s for k, s in sub["tables"].items() if s != "r" and k in selected}
    if not_ready:
        problems.append(
            "tables not ready: "
            + ", ".join(f"{quote_ident(s)}.{quote_ident(t)} ({st})" for (s, t), st in sorted(not_ready.items()))
        )
    waited = None
    if wait:
        if not sub["enabled"]:
            problems.append(f"subscription {quote_ident(name)} is disabled: it cannot catch up")
        elif not problems:
            try:
                waited = round(wait_caught_up(pub_conn, sub["slot"] or name, timeout, application_name=name), 3)
            except TimeoutError as exc:
                problems.append(str(exc))
    elif not sub["enabled"]:
        warnings.append(f"subscription {quote_ident(name)} is disabled: compared as the subscriber is now")
    for conn in (pub_conn, sub_conn):
        _fetch(conn, _SESSION)
        _fetch(conn, _READ_ONLY)
    results = []
    for key in selected:
        result, warning = _compare_one(pub_conn, sub_conn, key, published[key], sub["tables"], chunk_rows, retries)
        if warning:
            warnings.append(warning)
        if not result["equal"] and not result["reason"] and key in not_ready:
            result["reason"] = f"not ready (sync state {not_ready[key]})"
        results.append(result)
        if not result["equal"]:
            problems.append(_describe(result))
    return {
        "subscription": name,
        "publications": sub["publications"],
        "equal": not problems and all(r["equal"] for r in results),
        "tables": results,
        "caught_up_seconds": waited,
        "problems": problems,
        "warnings": warnings,
        "seconds": round(time.monotonic() - start, 3),
    }


def compare_node(publisher, node, subscription, timeout=300.0):
    """Compare every table of ``subscription`` on ``node`` with the publisher. Returns a result dict."""
    with connect(publisher) as pub_conn, connect(node) as node_conn:
        pub_conn.row_factory = node_conn.row_factory = tuple_row
        try:
            # The name as it is (compare_subscription parses SQL identifiers, which would fold its case).
            result = compare_subscription(pub_conn, node_conn, quote_ident(subscription), timeout=timeout)
        except CompareError:
            return {"subscription": subscription, "equal": False, "tables": [], "problems": ["no such subscription"]}
        tables = [
            {
                "table": t["table"],
                "publisher_rows": t["publisher_rows"],
                "node_rows": t["subscriber_rows"],
                "publisher_checksum": t["publisher_checksum"],
                "node_checksum": t["subscriber_checksum"],
                "equal": t["equal"],
            }
            for t in result["tables"]
            if t.get("method")
        ]
        return {
            "subscription": subscription,
            "equal": result["equal"],
            "caught_up_seconds": result["caught_up_seconds"],
            "tables": tables,
            "problems": result["problems"],
        }


# ----------------------------------------------------------------------------------------------
# the compare module's run
# ----------------------------------------------------------------------------------------------


def run_compare(m):
    """The ``compare`` module on a :class:`~.pg_module.PgModule` (its connection: the subscriber); exits or fails."""
    p = m.params
    for option, value, minimum in (("chunk_rows", p["chunk_rows"], 1), ("retries", p["retries"], 0)):
        if value < minimum:
            m.fail(f"{option} must be >= {minimum}, got {value}")
    if p["timeout"] <= 0:
        m.fail(f"timeout must be > 0, got {p['timeout']}")
    secrets = publisher_secrets(p["publisher"])
    m.add_secret(*secrets)
    m.connect()
    m.require_versions("compare module", [])
    try:
        pub_conn = connect_publisher(publisher_params(p["publisher"]))
    except PgConnectionError as exc:
        m.fail(str(exc))
    try:
        result = compare_subscription(
            pub_conn,
            m.conn,
            subscription=p["subscription"],
            tables=p["tables"],
            chunk_rows=p["chunk_rows"],
            wait=p["wait_caught_up"],
            timeout=p["timeout"],
            retries=p["retries"],
            database=p.get("login_db"),
        )
    except CompareError as exc:
        m.fail(str(exc))
    except psycopg.Error as exc:
        m.fail(format_db_error(exc, secrets, "comparing failed"), sqlstate=exc.sqlstate)
    finally:
        pub_conn.close()
    # Ansible returns its warnings as the result's "warnings" (and shows them): one list, not two.
    for warning in result.pop("warnings"):
        m.warn(warning)
    m.exit(changed=False, **result)
