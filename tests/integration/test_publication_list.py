"""inventium.logical_replication.publication's list form (``publications: [...]``) against real PostgreSQL servers.

The same scenarios as the single form, for several publications in one call: created -> a no-op
re-run -> check mode writes nothing and predicts the result -> ``--diff`` keyed by publication name
-> bad input in any item fails naming the item's index and name with nothing applied; plus
publications created, altered and dropped in one call, and the one transaction: a statement that
fails for a later item leaves the earlier items unapplied too. Assertions read the catalogs.
"""

from __future__ import annotations

import pytest
import test_publication
from support.ansible import run_module
from test_publication import (
    MODULE,
    all_publications,
    args,
    catalog,
    create,
    fail,
)

db = test_publication.db  # a fixture of that module, used here too


def test_several_publications_created_checked_and_idempotent(db):
    items = [
        {"name": "books_pub", "tables": ["books"]},
        {"name": '"LeadPub"', "tables": ['"Sales Data"."Order Items"'], "publish": ["insert", "update"]},
        {"name": "empty_pub", "tables": [], "comment": "nothing yet"},
    ]
    before = all_publications(db)
    checked = run_module(MODULE, args(db, publications=items), check=True, diff=True)
    assert checked["changed"] is True
    assert all_publications(db) == before, "check mode changed the catalog"
    assert [item["name"] for item in checked["publications"]] == ["books_pub", "LeadPub", "empty_pub"]
    assert [item["changed"] for item in checked["publications"]] == [True, True, True]

    applied = run_module(MODULE, args(db, publications=items), diff=True)
    assert applied["changed"] is True
    assert applied["queries"] == [
        'CREATE PUBLICATION "books_pub" FOR TABLE "public"."books"',
        'CREATE PUBLICATION "LeadPub" FOR TABLE "Sales Data"."Order Items" WITH (publish = \'insert, update\')',
        'CREATE PUBLICATION "empty_pub"',
        "COMMENT ON PUBLICATION \"empty_pub\" IS 'nothing yet'",
    ]
    assert [len(item["queries"]) for item in applied["publications"]] == [1, 1, 2]
    assert checked["queries"] == applied["queries"]
    assert checked["diff"] == applied["diff"]
    assert checked["publications"] == applied["publications"], "check mode predicted another state"
    assert "publication" not in applied  # the single form's key
    assert applied["diff"]["before"] == {}
    assert set(applied["diff"]["after"]) == {"books_pub", "LeadPub", "empty_pub"}
    assert applied["diff"]["after"]["LeadPub"] == applied["publications"][1]["publication"]
    assert applied["publications"][1]["diff"] == {"before": {}, "after": applied["diff"]["after"]["LeadPub"]}
    assert set(catalog(db, "books_pub")["tables"]) == {("public", "books")}
    assert catalog(db, "LeadPub")["publish"] == {"insert", "update"}
    assert set(catalog(db, "LeadPub")["tables"]) == {("Sales Data", "Order Items")}
    assert catalog(db, "empty_pub")["comment"] == "nothing yet"

    again = run_module(MODULE, args(db, publications=items), diff=True)
    assert again["changed"] is False, again["queries"]
    assert again["queries"] == []
    assert [item["changed"] for item in again["publications"]] == [False, False, False]
    assert again["diff"]["before"] == again["diff"]["after"] == applied["diff"]["after"]


def test_created_altered_and_dropped_in_one_call(db):
    create(db, "CREATE PUBLICATION kept FOR TABLE books")
    create(db, "CREATE PUBLICATION altered FOR TABLE books")
    create(db, "CREATE PUBLICATION dropped FOR TABLE authors")
    items = [
        {"name": "kept", "tables": ["books"]},
        {"name": "altered", "tables": ["books", "authors"], "publish": ["insert"]},
        {"name": "dropped", "state": "absent"},
        {"name": "new_pub", "tables": ["authors"]},
    ]
    checked = run_module(MODULE, args(db, publications=items), check=True, diff=True)
    assert [item["changed"] for item in checked["publications"]] == [False, True, True, True]
    assert catalog(db, "dropped") is not None
    assert catalog(db, "new_pub") is None
    assert set(catalog(db, "altered")["tables"]) == {("public", "books")}

    result = run_module(MODULE, args(db, publications=items), diff=True)
    assert result["queries"] == [
        'ALTER PUBLICATION "altered" SET TABLE "public"."books", "public"."authors"',
        "ALTER PUBLICATION \"altered\" SET (publish = 'insert')",
        'DROP PUBLICATION "dropped"',
        'CREATE PUBLICATION "new_pub" FOR TABLE "public"."authors"',
    ]
    assert result["queries"] == checked["queries"]
    assert result["diff"] == checked["diff"]
    assert [item["changed"] for item in result["publications"]] == [False, True, True, True]
    assert result["publications"][2]["publication"] == {}
    assert "dropped" in result["diff"]["before"]
    assert "dropped" not in result["diff"]["after"]
    assert "new_pub" not in result["diff"]["before"]
    assert result["diff"]["after"]["altered"]["publish"] == ["insert"]
    assert set(catalog(db, "altered")["tables"]) == {("public", "books"), ("public", "authors")}
    assert catalog(db, "altered")["publish"] == {"insert"}
    assert catalog(db, "dropped") is None
    assert set(catalog(db, "new_pub")["tables"]) == {("public", "authors")}
    assert set(catalog(db, "kept")["tables"]) == {("public", "books")}
    assert run_module(MODULE, args(db, publications=items))["changed"] is False


BAD_ITEMS = {
    # id: (bad item, expected message part, minimum major, maximum major)
    "duplicate": ({"name": '"new_a"', "tables": ["books"]}, "name: publications[0] has the same name", 0, 99),
    "option": (
        {"name": "p2", "all_tables": True, "tables": ["books"]},
        "all_tables: true conflicts with tables",
        0,
        99,
    ),
    "table-entry": ({"name": "p2", "tables": [42]}, "tables[0]: expected a table name", 0, 99),
    "missing-table": ({"name": "p2", "tables": ["books", "nosuch"]}, "public.nosuch", 0, 99),
    "missing-owner": ({"name": "p2", "tables": ["books"], "owner": "nobody_here"}, "owner: role", 0, 99),
    "version-gate": ({"name": "p2", "schemas": ["inventory"]}, "schemas requires PostgreSQL >= 15", 0, 14),
    "postgresql-rejects": (
        {"name": "p2", "tables": [{"name": "books", "columns": ["id", "nosuch"]}]},
        'column "nosuch"',
        15,
        99,
    ),
}


@pytest.mark.parametrize("case", list(BAD_ITEMS))
def test_bad_item_fails_naming_it_with_nothing_applied(db, case):
    bad, expected, min_major, max_major = BAD_ITEMS[case]
    if not min_major <= db.server.major <= max_major:
        pytest.skip(f"not a case on PostgreSQL {db.server.major}")
    create(db, "CREATE PUBLICATION old_pub FOR TABLE authors")
    items = [{"name": "new_a", "tables": ["books"]}, {"name": "old_pub", "state": "absent"}, bad]
    result = fail(db, {"publications": items})
    assert result["msg"].startswith(f"publications[2] (name={bad['name']}): "), result["msg"]
    assert expected in result["msg"]
    assert result["queries"] == []
    assert catalog(db, "new_a") is None
    assert catalog(db, "old_pub") is not None


REFUSE_COMMENTS = """
CREATE FUNCTION refuse_comments() RETURNS event_trigger LANGUAGE plpgsql AS
$$BEGIN RAISE EXCEPTION 'comments are refused in this database'; END$$;
CREATE EVENT TRIGGER refuse_comments ON ddl_command_start WHEN TAG IN ('COMMENT') EXECUTE FUNCTION refuse_comments();
"""


def test_a_later_item_failing_rolls_back_every_item(db):
    """All items are one transaction: PostgreSQL refusing item 2's statement undoes items 0 and 1 too."""
    create(db, "CREATE PUBLICATION old_pub FOR TABLE authors")
    # passes every check of the module (COMMENT is not part of the validation), refused when applied
    create(db, REFUSE_COMMENTS)
    items = [
        {"name": "first_pub", "tables": ["books"]},
        {"name": "old_pub", "state": "absent"},
        {"name": "late_pub", "tables": ["authors"], "comment": "refused"},
    ]
    result = fail(db, {"publications": items})
    assert result["msg"].startswith("publications[2] (name=late_pub): "), result["msg"]
    assert "comments are refused in this database" in result["msg"]
    assert result["queries"] == [
        'CREATE PUBLICATION "first_pub" FOR TABLE "public"."books"',
        'DROP PUBLICATION "old_pub"',
        'CREATE PUBLICATION "late_pub" FOR TABLE "public"."authors"',
        "COMMENT ON PUBLICATION \"late_pub\" IS 'refused'",
    ]
    assert "publications" not in result  # rolled back: no item counts as applied
    assert catalog(db, "first_pub") is None
    assert catalog(db, "old_pub") is not None
    assert catalog(db, "late_pub") is None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [({"name": "x"}, "mutually exclusive: publications|name"), ({"tables": ["books"]}, "publications|tables")],
    ids=["name", "tables"],
)
def test_list_and_single_options_exclude_each_other(db, extra, expected):
    result = fail(db, {"publications": [{"name": "new_a"}], **extra})
    assert expected in result["msg"]
    assert catalog(db, "new_a") is None


def test_empty_list_changes_nothing(db):
    result = run_module(MODULE, args(db, publications=[]), diff=True)
    assert (result["changed"], result["queries"], result["publications"]) == (False, [], [])
