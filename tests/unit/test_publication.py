"""Unit tests of the publication module's pure pieces (no database)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _publication_plan as pub
from ansible_collections.inventium.logical_replication.plugins.module_utils import _publications
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (
    QualifiedName,
)
from ansible_collections.inventium.logical_replication.plugins.modules import publication as pub_module


def render(composable):
    return composable.as_string(None)


def params(**kwargs):
    base = {
        "name": "p",
        "state": "present",
        "all_tables": None,
        "tables": None,
        "schemas": None,
        "publish": None,
        "publish_via_partition_root": None,
        "publish_generated_columns": None,
        "owner": None,
        "comment": None,
    }
    base.update(kwargs)
    return base


# ----------------------------------------------------------------------------------------------
# publish
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        ([], ()),
        ([""], ()),
        (["insert"], ("insert",)),
        (["truncate", "insert"], ("insert", "truncate")),
        (["insert, update"], ("insert", "update")),
        ([" Delete ", "TRUNCATE , insert", "update", "insert"], ("insert", "update", "delete", "truncate")),
        ("update,insert", ("insert", "update")),
        (["insert,,update,"], ("insert", "update")),
    ],
)
def test_normalize_publish(given, expected):
    assert pub.normalize_publish(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["insert", "upsert"], "publish: unknown operation 'upsert'"),
        (["insert update"], "publish: unknown operation 'insert update'"),
        ([1], "publish: 1 is not an operation name"),
    ],
)
def test_normalize_publish_errors(given, message):
    with pytest.raises(pub.OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pub.normalize_publish(given)


def test_publish_from_flags():
    row = {"pubinsert": True, "pubupdate": False, "pubdelete": True, "pubtruncate": True}
    assert _publications.publish_from_flags(row) == ("insert", "delete", "truncate")


# ----------------------------------------------------------------------------------------------
# tables and schemas
# ----------------------------------------------------------------------------------------------


def test_parse_tables_strings_and_dicts():
    specs = pub.parse_tables(
        [
            "books",
            '"Sales Data"."Order Items"',
            {"name": "Inventory.Stock", "columns": ["ID", '"Unit Price"'], "where": "  amount > 0 "},
            {"name": "public.empty_where", "where": "   "},
        ]
    )
    assert [s.qname for s in specs] == [
        QualifiedName("public", "books"),
        QualifiedName("Sales Data", "Order Items"),
        QualifiedName("inventory", "stock"),
        QualifiedName("public", "empty_where"),
    ]
    assert specs[2].columns == ("id", "Unit Price")
    assert specs[2].where == "amount > 0"
    assert specs[3].where is None
    assert specs[1].label == 'tables[1] ("Sales Data"."Order Items")'
    assert pub.parse_tables(None) is None
    assert pub.parse_tables([]) == []


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("books", "tables: expected a list, got str"),
        ([42], "tables[0]: expected a table name or a dict with name/columns/where, got int 42"),
        ([{"name": "t", "colums": ["a"]}], "tables[0]: unknown key(s) colums (expected name, columns, where)"),
        ([{"columns": ["a"]}], "tables[0]: the key 'name' is required"),
        ([{"name": "t", "columns": "a, b"}], "tables[0].columns: expected a list of column names, got str"),
        ([{"name": "t", "columns": []}], "tables[0].columns: the column list must not be empty"),
        ([{"name": "t", "columns": ["a", "A"]}], "tables[0].columns: column a is listed more than once"),
        ([{"name": "t", "columns": ["a", 5]}], "tables[0].columns[1]: expected a name (string), got int 5"),
        ([{"name": "t", "where": 5}], "tables[0].where: expected an SQL expression (string), got int 5"),
        (["a.b.c"], "tables[0]: invalid name 'a.b.c'"),
        (['"open'], "tables[0]: invalid name"),
        (["t", "public.T"], "tables[1]: table public.t is already listed as tables[0]"),
        ([{"name": 7}], "tables[0].name: expected a name (string), got int 7"),
    ],
)
def test_parse_tables_errors(given, message):
    with pytest.raises(pub.OptionError) as info:
        pub.parse_tables(given)
    assert message in str(info.value)


def test_parse_schemas():
    assert pub.parse_schemas(None) is None
    assert pub.parse_schemas(["Sales", '"Sales Data"', "inventory"]) == ("Sales Data", "inventory", "sales")
    with pytest.raises(pub.OptionError, match=r"schemas\[1\]: schema sales is listed more than once"):
        pub.parse_schemas(["sales", "SALES"])


# ----------------------------------------------------------------------------------------------
# Desired: conflicts, kinds
# ----------------------------------------------------------------------------------------------


def test_desired_names_are_sql_identifiers():
    d = pub.Desired(params(name='"LeadPub"', owner='"Ops Team"'))
    assert (d.name, d.owner) == ("LeadPub", "Ops Team")
    assert pub.Desired(params(name="LeadPub")).name == "leadpub"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"all_tables": True, "tables": ["t"]}, "all_tables: true conflicts with tables"),
        ({"all_tables": True, "schemas": ["s"]}, "all_tables: true conflicts with schemas"),
        ({"publish_generated_columns": "virtual"}, "publish_generated_columns: 'virtual' is not one of none, stored"),
        ({"name": ""}, "name: invalid name ''"),
    ],
)
def test_desired_errors(kwargs, message):
    with pytest.raises(pub.OptionError) as info:
        pub.Desired(params(**kwargs))
    assert message in str(info.value)


def test_desired_kinds():
    assert pub.Desired(params()).wanted_all_tables is None
    assert pub.Desired(params(all_tables=True, tables=[])).wanted_all_tables is True
    assert pub.Desired(params(tables=["t"])).wanted_all_tables is False
    assert pub.Desired(params(schemas=[])).wanted_all_tables is False
    assert pub.Desired(params(all_tables=False)).wanted_all_tables is False
    d = pub.Desired(params(comment=""))
    assert (d.comment_managed, d.wanted_comment) == (True, None)
    assert pub.Desired(params()).comment_managed is False


# ----------------------------------------------------------------------------------------------
# version gating
# ----------------------------------------------------------------------------------------------


def full_featured():
    return pub.Desired(
        params(
            tables=[{"name": "a", "where": "x > 1"}, {"name": "b", "columns": ["id"]}, "c"],
            schemas=["s"],
            publish_generated_columns="stored",
            publish_via_partition_root=True,
        )
    )


@pytest.mark.parametrize(
    ("major", "expected"),
    [
        (
            13,
            [
                ("tables[0].where", 15),
                ("tables[1].columns", 15),
                ("schemas", 15),
                ("publish_generated_columns", 18),
            ],
        ),
        (
            14,
            [
                ("tables[0].where", 15),
                ("tables[1].columns", 15),
                ("schemas", 15),
                ("publish_generated_columns", 18),
            ],
        ),
        (15, [("publish_generated_columns", 18)]),
        (17, [("publish_generated_columns", 18)]),
        (18, []),
    ],
)
def test_version_problems(major, expected):
    assert [(option, minimum) for option, minimum, _reason in pub.version_problems(full_featured(), major)] == expected


def test_version_problems_ignore_empty_and_unset():
    d = pub.Desired(params(tables=["a", {"name": "b"}], schemas=[]))
    assert pub.version_problems(d, 13) == []


# ----------------------------------------------------------------------------------------------
# diffing
# ----------------------------------------------------------------------------------------------


def table(schema, name, columns=None, where=None):
    return _publications.table_state(schema, name, columns, where)


def test_diff_tables():
    current = [
        table("public", "a"),
        table("public", "b", where="(x > 1)"),
        table("public", "c", columns=["id", "v"]),
        table("Sales Data", "Order Items"),
    ]
    desired = [
        table("public", "a"),
        table("public", "b", where="(x > 2)"),
        table("public", "c", columns=["id"]),
        table("public", "d"),
    ]
    added, removed, changed = pub.diff_tables(current, desired)
    assert added == ["public.d"]
    assert removed == ['"Sales Data"."Order Items"']
    assert changed == ["public.b", "public.c"]
    assert pub.diff_tables(current, current) == ([], [], [])


def test_table_state_display_names():
    assert table("public", "books")["name"] == "public.books"
    assert table("Sales Data", "Order Items")["name"] == '"Sales Data"."Order Items"'
    assert table("public", "user")["name"] == 'public."user"'


def test_referenced_attnums():
    pg15 = (
        "{OPEXPR :opno 98 :opfuncid 67 :opresulttype 16 :opretset false :opcollid 0 :inputcollid 100 :args "
        "({VAR :varno 1 :varattno 2 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 "
        ":varattnosyn 2 :location 46} {CONST :consttype 25 :consttypmod -1 :constcollid 100 :constlen -1 "
        ":constbyval false :constisnull false :location 48 :constvalue 5 [ 20 0 0 0 120 ]}) :location 47}"
    )
    pg18 = (
        "{BOOLEXPR :boolop and :args ({OPEXPR :opno 98 :args ({VAR :varno 1 :varattno 4 :vartype 25 "
        ":varnullingrels (b) :varlevelsup 0 :varreturningtype 0} {CONST :consttype 25}) :location -1} "
        "{OPEXPR :opno 521 :args ({VAR :varno 1 :varattno 12 :vartype 23} {CONST :consttype 23})}) :location -1}"
    )

    def referenced_attnums(tree):  # the row filter rule's pattern (run by PostgreSQL in the one SQL copy)
        return {int(n) for n in re.findall(_publications.FILTER_COLUMN_PATTERN, tree or "")}

    assert referenced_attnums(pg15) == {2}
    assert referenced_attnums(pg18) == {4, 12}
    assert referenced_attnums(None) == set()


def test_public_state_strips_internal_keys():
    state = {"name": "p", "_oid": 1, "tables": [{**table("public", "a"), "_relid": 5}]}
    assert pub.public_state(state) == {"name": "p", "tables": [table("public", "a")]}
    assert pub.public_state(None) == {}


# ----------------------------------------------------------------------------------------------
# SQL composition
# ----------------------------------------------------------------------------------------------


def test_table_entry_sql():
    spec = pub.parse_tables(
        [{"name": '"Sales Data"."Order Items"', "columns": ["id", '"Unit Price"'], "where": "qty > 0"}]
    )
    assert render(pub.table_entry_sql(spec[0])) == '"Sales Data"."Order Items" ("id", "Unit Price") WHERE (qty > 0)'
    assert render(pub.table_entry_sql(pub.parse_tables(["books"])[0])) == '"public"."books"'


def test_stored_entry_sql_recreates_catalog_rows_exactly():
    stored = table("public", "books", columns=["id", "topic"], where="flag")
    assert render(pub.stored_entry_sql(stored)) == 'ONLY "public"."books" ("id", "topic") WHERE (flag)'


def test_objects_and_create_sql():
    entries = [pub.table_entry_sql(s) for s in pub.parse_tables(["a", "s.b"])]
    objects = pub.objects_sql(entries, ["inventory", "Sales Data"])
    assert render(objects) == 'TABLE "public"."a", "s"."b", TABLES IN SCHEMA "inventory", "Sales Data"'
    assert render(pub.objects_sql([], ["x"])) == 'TABLES IN SCHEMA "x"'
    assert pub.objects_sql([], []) is None
    options = {"publish": ("insert", "truncate"), "publish_via_partition_root": True}
    assert render(pub.create_sql("LeadPub", False, objects, options)) == (
        'CREATE PUBLICATION "LeadPub" FOR TABLE "public"."a", "s"."b", TABLES IN SCHEMA "inventory", "Sales Data"'
        " WITH (publish = 'insert, truncate', publish_via_partition_root = true)"
    )
    assert render(pub.create_sql("all", True, None, {})) == 'CREATE PUBLICATION "all" FOR ALL TABLES'
    assert render(pub.create_sql("e", False, None, {"publish": ()})) == "CREATE PUBLICATION \"e\" WITH (publish = '')"


def state(**kwargs):
    base = {
        "name": "p",
        "owner": "postgres",
        "all_tables": False,
        "tables": [],
        "schemas": [],
        "publish": ["insert", "update", "delete", "truncate"],
        "publish_via_partition_root": False,
        "comment": None,
    }
    base.update(kwargs)
    return base


def test_option_changes_and_create_options():
    d = pub.Desired(params(publish=["truncate", " insert"], publish_via_partition_root=False))
    assert pub.option_changes(state(), d, 15) == {"publish": ("insert", "truncate")}
    d = pub.Desired(params(publish_generated_columns="stored", publish_via_partition_root=True))
    assert pub.option_changes(state(publish_generated_columns="none"), d, 18) == {
        "publish_via_partition_root": True,
        "publish_generated_columns": "stored",
    }
    assert pub.option_changes(state(), pub.Desired(params()), 18) == {}
    assert pub.create_options(state()) == {}
    assert pub.create_options(state(publish=["insert"], publish_via_partition_root=True)) == {
        "publish": ("insert",),
        "publish_via_partition_root": True,
    }
    assert pub.create_options(state(publish_generated_columns="stored")) == {"publish_generated_columns": "stored"}


# ----------------------------------------------------------------------------------------------
# planning (no database: a stand-in for PgModule)
# ----------------------------------------------------------------------------------------------


def planner(major=15, **kwargs):
    module = pub.PublicationModule(SimpleNamespace(server_major=major), pub.Desired(params(**kwargs)))
    module.session = {"current_user": "postgres", "database": "app", "wal_level": "logical"}
    return module


def plan(module, current, tables=None, schemas=None):
    d = module.desired
    final_all = d.wanted_all_tables
    if final_all is None:
        final_all = current["all_tables"] if current else False
    if d.tables is not None:
        entries = [(s.label, pub.table_entry_sql(s)) for s in d.tables]
    elif current and not current["all_tables"]:
        entries = [("t", pub.stored_entry_sql(t)) for t in current["tables"]]
    else:
        entries = []
    target = module.target_state(current, final_all, tables or [], schemas or [])
    statements, warnings = module.plan(current, target, entries)
    return [render(s) for s in statements], warnings, target


def test_plan_create_with_owner_and_comment():
    module = planner(tables=["books"], owner="ops", comment="c", publish=["insert"])
    statements, warnings, target = plan(module, None, [table("public", "books")])
    assert statements == [
        'CREATE PUBLICATION "p" FOR TABLE "public"."books" WITH (publish = \'insert\')',
        'ALTER PUBLICATION "p" OWNER TO "ops"',
        "COMMENT ON PUBLICATION \"p\" IS 'c'",
    ]
    assert warnings == []
    assert target["owner"] == "ops"


def test_plan_row_filter_change_is_one_set_with_schemas():
    module = planner(tables=[{"name": "books", "where": "topic = 'b'"}])
    current = state(tables=[table("public", "books", where="(topic = 'a'::text)")], schemas=["inventory"])
    statements, _warnings, target = plan(
        module, current, [table("public", "books", where="(topic = 'b'::text)")], ["inventory"]
    )
    assert statements == [
        'ALTER PUBLICATION "p" SET TABLE "public"."books" WHERE (topic = \'b\'), TABLES IN SCHEMA "inventory"'
    ]
    assert target["schemas"] == ["inventory"]


def test_plan_no_change():
    module = planner(tables=["books"], publish="insert,update,delete,truncate")
    current = state(tables=[table("public", "books")])
    assert plan(module, current, [table("public", "books")])[0] == []


def test_plan_empty_list_drops_everything():
    module = planner(tables=[], schemas=[])
    current = state(tables=[table("public", "b"), table("public", "a")], schemas=["s"])
    statements, _warnings, _target = plan(module, current)
    assert statements == ['ALTER PUBLICATION "p" DROP TABLE ONLY "public"."b", ONLY "public"."a", TABLES IN SCHEMA "s"']


def test_plan_via_root_order():
    enable = planner(tables=[{"name": "m", "where": "v > 1"}], publish_via_partition_root=True)
    statements, _warnings, _target = plan(
        enable, state(tables=[table("public", "m")]), [table("public", "m", where="(v > 1)")]
    )
    assert statements[0] == 'ALTER PUBLICATION "p" SET (publish_via_partition_root = true)'
    assert statements[1].startswith('ALTER PUBLICATION "p" SET TABLE')
    disable = planner(tables=["m"], publish_via_partition_root=False)
    current = state(tables=[table("public", "m", where="(v > 1)")], publish_via_partition_root=True)
    statements, _warnings, _target = plan(disable, current, [table("public", "m")])
    assert statements[0].startswith('ALTER PUBLICATION "p" SET TABLE')
    assert statements[1] == 'ALTER PUBLICATION "p" SET (publish_via_partition_root = false)'


def test_plan_all_tables_to_list_recreates_keeping_owner_comment_options():
    module = planner(tables=["books"])
    current = state(all_tables=True, owner="ops", comment="keep", publish=["insert"], publish_via_partition_root=True)
    statements, warnings, target = plan(module, current, [table("public", "books")])
    assert statements == [
        'DROP PUBLICATION "p"',
        'CREATE PUBLICATION "p" FOR TABLE "public"."books"'
        " WITH (publish = 'insert', publish_via_partition_root = true)",
        'ALTER PUBLICATION "p" OWNER TO "ops"',
        "COMMENT ON PUBLICATION \"p\" IS 'keep'",
    ]
    assert len(warnings) == 1
    assert "re-created" in warnings[0]
    assert "from FOR ALL TABLES to a table list" in warnings[0]
    assert (target["all_tables"], target["owner"], target["comment"]) == (False, "ops", "keep")


def test_plan_list_to_all_tables():
    module = planner(all_tables=True, comment="")
    current = state(tables=[table("public", "books")], comment="old")
    statements, warnings, target = plan(module, current)
    assert statements == ['DROP PUBLICATION "p"', 'CREATE PUBLICATION "p" FOR ALL TABLES']
    assert "to FOR ALL TABLES" in warnings[0]
    assert (target["tables"], target["comment"]) == ([], None)


def test_plan_owner_comment_options_on_existing():
    module = planner(owner="ops", comment="it's", publish=[])
    statements, _warnings, _target = plan(module, state(tables=[table("public", "a")]), [table("public", "a")])
    assert statements == [
        "ALTER PUBLICATION \"p\" SET (publish = '')",
        'ALTER PUBLICATION "p" OWNER TO "ops"',
        "COMMENT ON PUBLICATION \"p\" IS 'it''s'",
    ]


def test_target_state_for_new_publication_on_18():
    module = planner(major=18)
    target = module.target_state(None, False, [], [])
    assert target["publish_generated_columns"] == "none"
    assert target["owner"] == "postgres"
    assert "publish_generated_columns" not in planner(major=17).target_state(None, False, [], [])


def test_argument_spec_matches_documentation():
    import yaml

    doc = yaml.safe_load(pub_module.DOCUMENTATION)
    spec = pub_module.argument_spec()
    assert set(doc["options"]) == set(spec)
    for name, option in spec.items():
        documented = doc["options"][name]
        assert documented["type"] == option["type"], name
        assert documented.get("default") == option.get("default"), name
        assert documented.get("choices") == option.get("choices"), name
        assert documented.get("elements") == option.get("elements"), name
    yaml.safe_load(pub_module.EXAMPLES)
    yaml.safe_load(pub_module.RETURN)


def test_publications_suboptions_match_documentation():
    import yaml

    documented = yaml.safe_load(pub_module.DOCUMENTATION)["options"]["publications"]["suboptions"]
    spec = pub_module.argument_spec()["publications"]
    assert (spec["type"], spec["elements"]) == ("list", "dict")
    assert set(documented) == set(spec["options"])
    for name, option in spec["options"].items():
        assert documented[name]["type"] == option["type"], name
        assert documented[name].get("default") == option.get("default"), name
        assert documented[name].get("choices") == option.get("choices"), name
        assert documented[name].get("elements") == option.get("elements"), name
        assert bool(documented[name].get("required")) == bool(option.get("required")), name
