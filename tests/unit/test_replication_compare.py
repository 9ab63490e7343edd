"""The compare module's chunk and bisection logic (``_replication_compare.compare_ranges``) on in-memory tables.

A fake reader holds the publisher's and the subscriber's rows as ``(key tuple, value)`` lists and answers the
four questions the logic asks (digest of a key range, the key at an offset, which key is smaller, keyed or not)
the way the SQL reader does: ranges are ``(lo, hi]`` with ``None`` unbounded, keys travel as lists of text.
"""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _replication_compare as rc


def _row_sum(value):
    return int(hashlib.sha256(repr(value).encode()).hexdigest()[:15], 16)


class FakeReader:
    def __init__(self, publisher, subscriber, keyed=True, changing=None):
        self.rows = {rc.PUBLISHER: sorted(publisher), rc.SUBSCRIBER: sorted(subscriber)}
        self.keyed = keyed
        self.changing = changing or {}  # side -> number of digest reads that still see one extra row
        self.digests = 0
        self.key_lookups = 0

    @staticmethod
    def _key(text):
        return None if text is None else tuple(int(v) for v in text)

    def _in(self, side, lo, hi):
        lo, hi = self._key(lo), self._key(hi)
        return [(k, v) for k, v in self.rows[side] if (lo is None or k > lo) and (hi is None or k <= hi)]

    def digest(self, side, lo, hi):
        self.digests += 1
        rows = self._in(side, lo, hi)
        count, total = len(rows), sum(_row_sum(v) for _k, v in rows)
        if self.changing.get(side):
            self.changing[side] -= 1
            count, total = count + 1, total + 1
        return count, total

    def key_at(self, side, lo, hi, offset, descending=False):
        self.key_lookups += 1
        rows = self._in(side, lo, hi)
        if descending:
            rows = rows[::-1]
        return [str(v) for v in rows[offset][0]] if offset < len(rows) else None

    def key_less(self, a, b):
        return self._key(a) < self._key(b)


def table(n, start=1):
    return [((i,), f"row {i}") for i in range(start, start + n)]


def compare(reader, chunk_rows=10, attempts=3):
    return rc.compare_ranges(reader, chunk_rows, attempts=attempts, pause=0, sleep=lambda _s: None)


def test_equal_tables_are_chunked_and_sum_to_the_whole_table():
    reader = FakeReader(table(95), table(95))
    result = compare(reader)
    # 9 full chunks of 10, then the open-ended rest (5 rows)
    assert result["chunks"] == 10
    assert result["differing_chunks"] == 0
    assert result["first_difference"] is None
    assert result["publisher_rows"] == 95
    assert result["subscriber_rows"] == 95
    whole = FakeReader(table(95), table(95), keyed=False)
    assert compare(whole)["publisher_checksum"] == result["publisher_checksum"]
    assert result["publisher_checksum"] == result["subscriber_checksum"]


def test_exact_multiple_ends_with_an_empty_open_chunk():
    result = compare(FakeReader(table(30), table(30)))
    assert result["chunks"] == 4
    assert result["differing_chunks"] == 0


def test_empty_tables_are_one_equal_chunk():
    result = compare(FakeReader([], []))
    assert result["chunks"] == 1
    assert result["publisher_rows"] == 0
    assert result["differing_chunks"] == 0


def test_a_row_missing_on_the_subscriber_is_found_by_its_key():
    subscriber = [row for row in table(1000) if row[0] != (437,)]
    result = compare(FakeReader(table(1000), subscriber), chunk_rows=100)
    assert result["differing_chunks"] == 1
    assert result["first_difference"] == {
        "from_key": ["437"],
        "to_key": ["437"],
        "publisher_rows": 1,
        "subscriber_rows": 0,
    }
    assert result["subscriber_rows"] == 999


def test_a_changed_row_is_found():
    subscriber = [((k,), "changed" if k == 58 else v) for (k,), v in table(200)]
    first = compare(FakeReader(table(200), subscriber), chunk_rows=64)["first_difference"]
    assert first == {"from_key": ["58"], "to_key": ["58"], "publisher_rows": 1, "subscriber_rows": 1}


def test_an_extra_row_beyond_the_publishers_keys_is_in_the_open_last_chunk():
    result = compare(FakeReader(table(50), [*table(50), ((900,), "extra")]))
    assert result["differing_chunks"] == 1
    assert result["first_difference"]["from_key"] == ["900"]
    assert result["first_difference"]["subscriber_rows"] == 1
    assert result["first_difference"]["publisher_rows"] == 0


def test_an_extra_row_between_publisher_keys_is_found():
    publisher = [((k * 10,), f"r{k}") for k in range(1, 100)]
    subscriber = sorted([*publisher, ((555,), "extra")])
    first = compare(FakeReader(publisher, subscriber), chunk_rows=16)["first_difference"]
    assert first["from_key"] == ["555"]
    assert first["to_key"] == ["555"]


def test_several_differing_chunks_are_counted_and_the_first_is_reported():
    gone = {(5,), (55,), (56,), (99,)}
    result = compare(FakeReader(table(100), [r for r in table(100) if r[0] not in gone]))
    assert result["differing_chunks"] == 3
    assert result["first_difference"]["from_key"] == ["5"]


def test_composite_keys_are_compared_as_tuples():
    publisher = [((a, b), f"{a}-{b}") for a in range(1, 11) for b in range(1, 11)]
    subscriber = [row for row in publisher if row[0] != (7, 3)]
    first = compare(FakeReader(publisher, subscriber), chunk_rows=7)["first_difference"]
    assert first == {"from_key": ["7", "3"], "to_key": ["7", "3"], "publisher_rows": 1, "subscriber_rows": 0}


def test_duplicate_keys_on_the_subscriber_stop_the_bisection_without_looping():
    subscriber = sorted([*table(40), ((12,), "row 12"), ((12,), "row 12")])
    first = compare(FakeReader(table(40), subscriber))["first_difference"]
    assert first["from_key"] == ["12"]
    assert first["to_key"] == ["12"]
    assert first["publisher_rows"] == 1
    assert first["subscriber_rows"] == 3


def test_a_transient_difference_is_read_again_and_is_equal():
    reader = FakeReader(table(25), table(25), changing={rc.SUBSCRIBER: 2})
    result = compare(reader, attempts=3)
    assert result["differing_chunks"] == 0
    assert result["subscriber_rows"] == 25


def test_a_difference_that_outlasts_the_retries_counts():
    reader = FakeReader(table(25), table(25), changing={rc.SUBSCRIBER: 5})
    result = compare(reader, attempts=3)
    assert result["differing_chunks"] == 1


def test_after_a_persistent_difference_later_chunks_are_read_once():
    publisher = table(100)
    reader = FakeReader(publisher, [((k,), "x") for (k,), _v in publisher])  # every chunk differs
    result = compare(reader, attempts=5)
    assert result["chunks"] == 11
    assert result["differing_chunks"] == 10  # the 11th, open-ended chunk is empty on both sides
    # the first chunk read 5 times (2 digests each), the 10 others once; the first chunk's bisection:
    # 10 rows -> 5 -> 2 -> 1, one lower half (2 digests) per step
    assert reader.digests == 5 * 2 + 10 * 2 + 3 * 2


def test_whole_table_reports_no_key_range():
    result = compare(FakeReader(table(5), table(4), keyed=False))
    assert result["chunks"] == 1
    assert result["differing_chunks"] == 1
    assert result["first_difference"] is None


@pytest.mark.parametrize("missing", [1, 2, 9, 10, 11, 64, 100])
def test_bisection_finds_any_single_missing_row(missing):
    subscriber = [row for row in table(100) if row[0] != (missing,)]
    first = compare(FakeReader(table(100), subscriber), chunk_rows=100)["first_difference"]
    assert first["from_key"] == [str(missing)]
    assert first["to_key"] == [str(missing)]


def test_choose_key_prefers_the_first_fully_published_candidate():
    candidates = [{"index": "pk", "columns": ["id"]}, {"index": "uq", "columns": ["sku", "region"]}]
    assert rc.choose_key(candidates, ["id", "sku", "region"])["index"] == "pk"
    assert rc.choose_key(candidates, ["sku", "region", "title"])["index"] == "uq"
    assert rc.choose_key(candidates, ["title"]) is None
    assert rc.choose_key([], ["id"]) is None


def test_pick_subscription():
    subs = {"only": {}}
    assert rc.pick_subscription(subs) == "only"
    assert rc.pick_subscription({"MySub": {}}, '"MySub"') == "MySub"
    with pytest.raises(rc.CompareError, match=r"subscription nope does not exist .*: a, b"):
        rc.pick_subscription({"a": {}, "b": {}}, "nope")
    with pytest.raises(rc.CompareError, match=r"has 2 subscriptions \(a, b\)"):
        rc.pick_subscription({"a": {}, "b": {}})
    with pytest.raises(rc.CompareError, match=r"subscriptions: none"):
        rc.pick_subscription({}, "x")


def test_select_tables():
    published = {("public", "books"): {}, ("Sales", "Orders"): {}}
    assert rc.select_tables(published, None, "s") == [("Sales", "Orders"), ("public", "books")]
    assert rc.select_tables(published, [], "s") == [("Sales", "Orders"), ("public", "books")]
    assert rc.select_tables(published, ["books", '"Sales"."Orders"', "public.books"], "s") == [
        ("public", "books"),
        ("Sales", "Orders"),
    ]
    with pytest.raises(rc.CompareError, match=r"not published to subscription s .*: sales.orders, nope"):
        rc.select_tables(published, ["sales.orders", "nope"], "s")


class RecordingConn:
    """Enough of a psycopg connection for TableReader: records (query text, params), answers ``rows``."""

    connection = None  # psycopg's as_string() context: no connection, UTF-8

    def __init__(self, rows):
        self.rows = rows
        self.executed = []

    def cursor(self, row_factory=None):
        conn = self

        class Cursor:
            description = ("column",)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def execute(self, query, params=None):
                conn.executed.append((query, params))

            def fetchall(self):
                return conn.rows

        return Cursor()


def reader_for(key, row_filter=None):
    conns = {rc.PUBLISHER: RecordingConn([(3, "12")]), rc.SUBSCRIBER: RecordingConn([(3, "12")])}
    keys = {side: key for side in conns}
    reader = rc.TableReader(conns, "Sales", "Order%s", ["id", "name"], row_filter, keys)
    return reader, conns


def test_text_keys_are_ordered_and_bounded_collate_c_on_both_sides():
    reader, conns = reader_for([("region", "text", True), ("id", "bigint", False)])
    conns[rc.PUBLISHER].rows = [("eu", "7")]
    assert reader.key_at(rc.PUBLISHER, ["de", "5"], None, 99) == ["eu", "7"]
    query, params = conns[rc.PUBLISHER].executed[-1]
    column = '"Sales"."Order%%s"."region" COLLATE "C"'
    assert f'ROW({column}, "Sales"."Order%%s"."id") > ROW(CAST(%s AS text), CAST(%s AS bigint))' in query
    assert f'ORDER BY {column}, "Sales"."Order%%s"."id" OFFSET %s LIMIT 1' in query
    assert params == ["de", "5", 99]
    assert reader.digest(rc.SUBSCRIBER, ["de", "5"], ["eu", "7"]) == (3, 12)
    query, params = conns[rc.SUBSCRIBER].executed[-1]
    assert f"ROW({column}, " in query
    assert ") <= ROW(CAST(%s AS text), CAST(%s AS bigint))" in query
    assert params == ["de", "5", "eu", "7"]


def test_the_row_filter_applies_on_the_publisher_only_and_its_percent_signs_are_kept():
    reader, conns = reader_for([("id", "integer", False)], row_filter="(name ~~ 'a%'::text)")
    reader.digest(rc.PUBLISHER, None, ["10"])
    reader.digest(rc.SUBSCRIBER, None, ["10"])
    pub_query, pub_params = conns[rc.PUBLISHER].executed[-1]
    sub_query, sub_params = conns[rc.SUBSCRIBER].executed[-1]
    # psycopg turns %% back into %: the filter reaches the server as PostgreSQL deparsed it
    assert 'WHERE ((name ~~ \'a%%\'::text)) AND "Sales"."Order%%s"."id" <= CAST(%s AS integer)' in pub_query
    assert "name" not in sub_query.split("WHERE", 1)[1]
    assert pub_params == sub_params == ["10"]
    # a single key column is compared as itself, not as a one-column ROW()
    assert "ROW(" not in sub_query.split("WHERE", 1)[1]
