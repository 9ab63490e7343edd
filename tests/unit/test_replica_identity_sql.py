"""The replica identity rule, once (``_publications.replica_identity_rule_query``), for the checks and the module.

The integration test of the same name proves the rule against PostgreSQL; these check that both users
run that one rule and how the module words each verdict.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils import _publications


def render(query):
    return query.as_string(None)


def test_full_identity_counts_generated_columns():
    # REPLICA IDENTITY FULL covers every column, stored generated ones included (PostgreSQL refuses
    # UPDATE when a column list leaves one out); the old module copy filtered them out.
    assert "attgenerated" not in _publications.REPLICA_IDENTITY_ATTNUMS
    assert "NOT a.attisdropped" in _publications.REPLICA_IDENTITY_ATTNUMS


def test_checks_and_module_run_the_same_rule():
    rule = render(_publications.replica_identity_rule_query(_publications.sql.SQL("SOURCE")))
    head, tail = rule.split("SOURCE")
    for query in (_publications.publication_issues_query(15), _publications.table_rule_query()):
        text = render(query)
        assert head in text
        assert tail in text
    assert "full_with_list" in render(_publications.publication_issues_query(15))


def table(relid, name="public.t", attnums=None, qual=None):
    return {"name": name, "_relid": relid, "_relkind": "r", "_attnums": attnums, "_qual_tree": qual}


def test_module_warnings_word_each_verdict():
    calls = []

    def run(query, params):
        calls.append(params)
        return [
            {"oid": 1, "filter_outside": "b", "list_lacks": None, "full_with_list": False},
            {"oid": 2, "filter_outside": None, "list_lacks": "g", "full_with_list": True},
            {"oid": 3, "filter_outside": None, "list_lacks": None, "full_with_list": True},
            {"oid": 4, "filter_outside": None, "list_lacks": None, "full_with_list": False},
        ]

    tables = [
        table(1, "public.a", qual="{VAR :varno 1 :varattno 3}"),
        table(2, "public.b", attnums=[1, 2]),
        table(3, "public.c", attnums=[1, 2, 3]),
        table(4, "public.d", attnums=[1]),
        table(5, "public.e", attnums=[1]),  # no replica identity at all: warned about separately
    ]
    warnings = _publications.column_list_problems(run, {"name": "p"}, tables, "UPDATE/DELETE")
    assert calls == [
        [
            [1, 2, 3, 4, 5],
            [None, "{1,2}", "{1,2,3}", "{1}", "{1}"],
            ["{VAR :varno 1 :varattno 3}", None, None, None, None],
        ]
    ]
    assert len(warnings) == 3
    assert "the row filter of public.a uses column(s) b outside the replica identity" in warnings[0]
    assert "the column list of public.b lacks the replica identity column(s) g," in warnings[1]
    assert "public.c has REPLICA IDENTITY FULL, which allows no column list" in warnings[2]
