"""Experiment spec validation (plugins/module_utils/_experiment_spec.py): every bad input of issue X1.

Node facts are pg_settings rows as PostgreSQL 15 and 17 report them (name, context, vartype, enumvals,
min/max, unit); the integration test (tests/integration/test_experiment_plan.py) reads real ones.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _experiment_spec as spec_mod
from ansible_collections.inventium.logical_replication.plugins.module_utils._experiment_catalog import CATALOG
from ansible_collections.inventium.logical_replication.plugins.module_utils._experiment_spec import (
    SpecError,
    load_text,
    validate,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._experiment_steps import STEPS

REPO_ROOT = Path(__file__).resolve().parents[2]
FILE = "experiments/streaming.yml"


def row(name, context="sighup", vartype="integer", unit=None, enumvals=None, min_val=None, max_val=None):
    return {
        "name": name,
        "context": context,
        "vartype": vartype,
        "unit": unit,
        "enumvals": enumvals,
        "min_val": min_val,
        "max_val": max_val,
    }


COMMON = {
    "logical_decoding_work_mem": row(
        "logical_decoding_work_mem", "user", unit="kB", min_val="64", max_val="2147483647"
    ),
    "max_slot_wal_keep_size": row("max_slot_wal_keep_size", "sighup", unit="MB", min_val="-1", max_val="2147483647"),
    "shared_buffers": row("shared_buffers", "postmaster", unit="8kB", min_val="16", max_val="1073741823"),
    "max_sync_workers_per_subscription": row("max_sync_workers_per_subscription", min_val="0", max_val="262143"),
    "synchronous_commit": row(
        "synchronous_commit",
        "user",
        "enum",
        enumvals=["local", "remote_write", "remote_apply", "on", "off"],
    ),
    "server_version_num": row("server_version_num", "internal", min_val="150010", max_val="150010"),
    "log_connections": row("log_connections", "superuser-backend", "bool"),
}
PG17_ONLY = {
    "max_parallel_apply_workers_per_subscription": row(
        "max_parallel_apply_workers_per_subscription", "sighup", min_val="0", max_val="1024"
    ),
}


def facts():
    return {
        "publisher": {
            "major": 15,
            "version": "15.10",
            "settings": dict(COMMON),
            "publications": ["experiment_pub", "filter_1", "filter_2"],
            "tables": ["experiment.filtered", "experiment.rows", "public.books"],
        },
        "nodes": {
            "subscriber1": {"major": 15, "version": "15.10", "settings": dict(COMMON), "container": "subscriber1"},
            "subscriber2": {
                "major": 17,
                "version": "17.6",
                "settings": {**COMMON, **PG17_ONLY},
                "container": "subscriber2",
            },
        },
        "cores": 2,
    }


def base_spec():
    return {
        "question": "Does streaming large transactions shorten the time until they are visible?",
        "measure": ["commit_visible_seconds", "spill_bytes", "stream_bytes"],
        "workload": [
            {"step": "large_transaction", "id": "big", "rows": 500000},
            {"step": "wait_caught_up"},
        ],
        "variants": [
            {"name": "off", "subscription": {"streaming": "off"}},
            {"name": "on", "subscription": {"streaming": "on"}},
            {"name": "parallel", "subscription": {"streaming": "parallel"}, "requires": {"subscriber_major": 16}},
        ],
    }


def errors_of(spec, **kwargs):
    kwargs.setdefault("facts", facts())
    with pytest.raises(SpecError) as info:
        validate(spec, FILE, **kwargs)
    return info.value


def assert_error(spec, path, *words, **kwargs):
    """The spec fails; an error at exactly ``path`` has every word in its reason; the line names the file."""
    exc = errors_of(spec, **kwargs)
    matching = [reason for p, reason in exc.errors if p == path]
    assert matching, f"no error at {path}: {exc.errors}"
    assert any(all(w in reason for w in words) for reason in matching), matching
    line = next(line for line in str(exc).splitlines() if f": {path}: " in line)
    assert line.startswith(f"{FILE}: {path}: ")
    return exc


# ------------------------------------------------------------------------------ the valid plan


def test_plan_runs_variants_interleaved_with_default_repeat():
    plan = validate(base_spec(), FILE, facts=facts())
    assert plan["name"] == "streaming"
    assert plan["repeat"] == spec_mod.DEFAULT_REPEAT == 3
    assert plan["nodes"] == ["subscriber1", "subscriber2"]
    order = [(r["repetition"], r["variant"]) for r in plan["runs"]]
    assert order == [(rep, v) for rep in (1, 2, 3) for v in ("off", "on", "parallel")]
    assert [r["index"] for r in plan["runs"]] == list(range(1, 10))
    assert {r["total"] for r in plan["runs"]} == {9}


def test_repeat_from_the_file_and_the_override():
    spec = base_spec()
    spec["repeat"] = 5
    assert validate(spec, FILE, facts=facts())["repeat"] == 5
    plan = validate(spec, FILE, facts=facts(), repeat=1)
    assert plan["repeat"] == 1
    assert len(plan["runs"]) == 3


def test_requires_excludes_older_nodes_with_a_note():
    plan = validate(base_spec(), FILE, facts=facts())
    by_name = {v["name"]: v for v in plan["variants"]}
    assert by_name["off"]["nodes"] == ["subscriber1", "subscriber2"]
    assert by_name["parallel"]["nodes"] == ["subscriber2"]
    (note,) = plan["notes"]
    assert "parallel" in note
    assert "subscriber1" in note
    assert "15" in note


def test_yaml_off_is_the_string_off_for_streaming():
    spec = load_text("streaming: off\n", FILE)
    assert spec == {"streaming": False}
    s = base_spec()
    s["variants"][0]["subscription"] = {"streaming": False}
    plan = validate(s, FILE, facts=facts())
    assert plan["variants"][0]["subscription"] == {"streaming": "off"}


def test_steps_get_defaults_and_overrides_apply_to_one_variant_only():
    s = base_spec()
    s["variants"][1]["workload"] = {"big": {"rows": 1000}}
    plan = validate(s, FILE, facts=facts())
    steps = {v["name"]: v["steps"] for v in plan["variants"]}
    assert steps["off"][0]["rows"] == 500000
    assert steps["on"][0]["rows"] == 1000
    defaults = STEPS["large_transaction"]["params"]
    assert steps["on"][0]["payload_bytes"] == defaults["payload_bytes"]["default"]
    assert steps["on"][0]["table"] == defaults["table"]["default"]
    assert steps["on"][0]["background"] is False
    assert steps["off"][1] == {"step": "wait_caught_up", "background": False, "timeout": 600.0}
    assert s["workload"][0]["rows"] == 500000, "the spec itself is not modified"


def test_baseline_copy_adds_its_measure_and_measure_info_comes_from_the_catalog():
    s = base_spec()
    s["baseline"] = "copy"
    plan = validate(s, FILE, facts=facts())
    assert plan["measures"][-1] == "baseline_copy_seconds"
    for name in plan["measures"]:
        assert plan["measure_info"][name]["better"] == CATALOG[name]["better"]
        assert plan["measure_info"][name]["per_node"] == CATALOG[name]["per_node"]


def test_settings_limits_publication_and_sql_are_resolved():
    s = base_spec()
    s["variants"][0].update(
        {
            "publisher_settings": {"logical_decoding_work_mem": "64kB"},
            "subscriber_settings": {"max_sync_workers_per_subscription": 4},
            "publication": {"publish_via_partition_root": "yes", "publish": "insert, update"},
            "limits": {"cpus": 0.5, "memory": "512m"},
            "subscriber_sql": ["CREATE INDEX ON experiment.rows_full (k)"],
        }
    )
    v = validate(s, FILE, facts=facts())["variants"][0]
    assert v["publisher_settings"] == {"logical_decoding_work_mem": "64kB"}
    assert v["subscriber_settings"] == {"max_sync_workers_per_subscription": 4}
    assert v["publication"] == {"publish_via_partition_root": True, "publish": ["insert", "update"]}
    assert v["limits"] == {"cpus": 0.5, "memory": "512m"}
    assert v["subscriber_sql"] == ["CREATE INDEX ON experiment.rows_full (k)"]


def test_binary_on_a_15_publisher_gets_a_generated_note():
    s = base_spec()
    s["variants"] = [
        {"name": "text", "subscription": {"binary": False}},
        {"name": "bin", "subscription": {"binary": True}},
    ]
    plan = validate(s, FILE, facts=facts())
    notes = [n for n in plan["notes"] if "bin " in n]
    assert len(notes) == 2  # both nodes: the publisher is 15
    assert all("binary only changes how streamed changes are sent" in n for n in notes)
    f = facts()
    f["publisher"]["major"] = 17
    plan = validate(s, FILE, facts=f)
    assert [n for n in plan["notes"] if "bin " in n and "subscriber2" in n] == []
    assert [n for n in plan["notes"] if "bin " in n and "subscriber1" in n]


def test_without_facts_only_the_file_is_checked():
    s = base_spec()
    s["variants"][0]["subscriber_settings"] = {"anything_goes_offline": 1}
    plan = validate(s, FILE)
    assert plan["nodes"] == []
    assert len(plan["runs"]) == 9


# ------------------------------------------------------------------------------ bad input


def test_unknown_top_level_key():
    s = base_spec()
    s["mesure"] = ["spill_bytes"]
    assert_error(s, "mesure", "unknown key", "did you mean measure")


@pytest.mark.parametrize("key", ["question", "measure", "workload", "variants"])
def test_required_keys(key):
    s = base_spec()
    del s[key]
    assert_error(s, key, "is required")


def test_not_a_mapping():
    exc = errors_of(["question"])
    assert str(exc).startswith(FILE + ": expected a mapping")


def test_unknown_variant_key():
    s = base_spec()
    s["variants"][0]["subscriptions"] = {"streaming": "on"}
    assert_error(s, "variants[0].subscriptions", "unknown key", "did you mean subscription")


def test_unknown_measure():
    s = base_spec()
    s["measure"].append("commit_visible_secs")
    assert_error(s, "measure[3]", "unknown measure", "did you mean commit_visible_seconds")


def test_duplicate_measure():
    s = base_spec()
    s["measure"].append("spill_bytes")
    assert_error(s, "measure[3]", "listed twice")


def test_unknown_step():
    s = base_spec()
    s["workload"].insert(0, {"step": "large_transactions"})
    assert_error(s, "workload[0].step", "unknown step", "did you mean large_transaction")


def test_step_without_kind():
    s = base_spec()
    s["workload"].append({"rows": 3})
    assert_error(s, "workload[2].step", "is required")


def test_unknown_step_parameter():
    s = base_spec()
    s["workload"][0]["row"] = 5
    assert_error(s, "workload[0].row", "unknown parameter of step large_transaction", "did you mean rows")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("many", ["expected an integer"]),
        (1.5, ["expected an integer"]),
        (True, ["expected an integer"]),
        (-1, ["at least 0"]),
    ],
)
def test_bad_step_parameter_value(value, words):
    s = base_spec()
    s["workload"][0]["rows"] = value
    assert_error(s, "workload[0].rows", *words)


def test_duplicate_step_id():
    s = base_spec()
    s["workload"][1]["id"] = "big"
    assert_error(s, "workload[1].id", "duplicate step id")


def test_override_of_an_unknown_step_id():
    s = base_spec()
    s["variants"][0]["workload"] = {"bigg": {"rows": 1}}
    assert_error(s, "variants[0].workload.bigg", "no workload step has id", "did you mean big")


def test_override_of_an_unknown_parameter():
    s = base_spec()
    s["variants"][0]["workload"] = {"big": {"seconds": 1}}
    assert_error(s, "variants[0].workload.big.seconds", "unknown parameter of step large_transaction")


def test_guc_not_in_pg_settings_of_the_publisher():
    s = base_spec()
    s["variants"][0]["publisher_settings"] = {"logical_decoding_work_memory": "64MB"}
    assert_error(
        s,
        "variants[0].publisher_settings.logical_decoding_work_memory",
        "not a server parameter of the publisher",
        "pg_settings",
        "did you mean logical_decoding_work_mem",
    )


def test_guc_missing_on_an_older_node():
    s = base_spec()
    s["variants"][0]["subscriber_settings"] = {"max_parallel_apply_workers_per_subscription": 4}
    exc = assert_error(
        s,
        "variants[0].subscriber_settings.max_parallel_apply_workers_per_subscription",
        "not a server parameter of subscriber1",
        "PostgreSQL 15",
    )
    assert "subscriber2" not in str(exc)
    # ... and fine where the variant runs only on 16+:
    s["variants"][0]["requires"] = {"subscriber_major": 16}
    plan = validate(s, FILE, facts=facts())
    assert plan["variants"][0]["nodes"] == ["subscriber2"]


def test_non_reloadable_guc():
    s = base_spec()
    s["variants"][2]["publisher_settings"] = {"shared_buffers": "256MB"}
    assert_error(s, "variants[2].publisher_settings.shared_buffers", "restart", "postmaster", "reloadable")


def test_backend_guc_is_a_note():
    s = base_spec()
    s["variants"][0]["publisher_settings"] = {"log_connections": True}
    plan = validate(s, FILE, facts=facts())
    assert plan["variants"][0]["publisher_settings"] == {"log_connections": True}
    assert any("log_connections (context superuser-backend) applies to new sessions only" in n for n in plan["notes"])


def test_internal_guc():
    s = base_spec()
    s["variants"][0]["subscriber_settings"] = {"server_version_num": 1}
    assert_error(s, "variants[0].subscriber_settings.server_version_num", "cannot be changed")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("logical_decoding_work_mem", "32kB", ["outside the valid range"]),
        ("logical_decoding_work_mem", "64 apples", ["invalid"]),
        ("synchronous_commit", "sometimes", ["valid values are"]),
    ],
)
def test_invalid_guc_value(name, value, words):
    s = base_spec()
    s["variants"][0]["publisher_settings"] = {name: value}
    assert_error(s, f"variants[0].publisher_settings.{name}", "invalid value for the publisher", *words)


def test_unknown_subscription_option():
    s = base_spec()
    s["variants"][0]["subscription"] = {"streamin": "on"}
    assert_error(s, "variants[0].subscription.streamin", "not a subscription option", "did you mean streaming")


def test_bad_subscription_value():
    s = base_spec()
    s["variants"][0]["subscription"] = {"streaming": "sometimes"}
    assert_error(s, "variants[0].subscription.streaming", "'sometimes' is not one of off, on, parallel")


def test_subscription_value_too_new_without_requires():
    s = base_spec()
    del s["variants"][2]["requires"]
    exc = assert_error(
        s, "variants[2].subscription.streaming", "streaming: parallel needs PostgreSQL 16+", "subscriber1 is 15"
    )
    assert "requires: {subscriber_major: 16}" in str(exc)


def test_subscription_option_too_new():
    s = base_spec()
    s["variants"][0]["subscription"] = {"origin": "none"}
    assert_error(s, "variants[0].subscription.origin", "origin needs PostgreSQL 16+", "subscriber1 is 15")
    s["variants"][0]["requires"] = {"subscriber_major": 16}
    validate(s, FILE, facts=facts())


def test_subscription_option_too_new_for_every_node_is_an_error():
    s = base_spec()
    s["variants"][0]["subscription"] = {"two_phase": True}
    exc = errors_of(s)
    paths = [p for p, _reason in exc.errors]
    assert paths.count("variants[0].subscription.two_phase") == 2  # both nodes named


def test_publication_option_too_new_for_the_publisher():
    s = base_spec()
    s["variants"][0]["publication"] = {"publish_generated_columns": "stored"}
    assert_error(s, "variants[0].publication.publish_generated_columns", "PostgreSQL 18+", "publisher is 15")


def test_unknown_publication_option():
    s = base_spec()
    s["variants"][0]["publication"] = {"publish_via_root": True}
    assert_error(s, "variants[0].publication.publish_via_root", "not a publication option")


def test_publications_by_name_with_tables_and_row_filters():
    s = base_spec()
    s["variants"][0]["publication"] = {
        "filter_1": {"tables": [{"name": "experiment.filtered", "where": "grp = 0"}, "books"]},
        "filter_2": {"tables": [{"name": "experiment.filtered", "columns": ["k", "grp"]}], "publish": ["insert"]},
    }
    s["variants"][1]["publication"] = {"tables": []}
    plan = validate(s, FILE, facts=facts())
    assert plan["variants"][0]["publication"] == {
        "filter_1": {"tables": [{"name": "experiment.filtered", "where": "grp = 0"}, "books"]},
        "filter_2": {"tables": [{"name": "experiment.filtered", "columns": ["k", "grp"]}], "publish": ["insert"]},
    }
    assert plan["variants"][1]["publication"] == {"tables": []}


def test_unknown_publication():
    s = base_spec()
    s["variants"][0]["publication"] = {"filter_3": {"tables": []}}
    assert_error(s, "variants[0].publication.filter_3", "no publication 'filter_3' on the publisher", "did you mean")


def test_experiment_pub_must_exist_for_plain_options():
    s = base_spec()
    s["variants"][0]["publication"] = {"publish_via_partition_root": True}
    f = facts()
    f["publisher"]["publications"] = ["other_pub"]
    assert_error(s, "variants[0].publication", "no publication 'experiment_pub'", facts=f)


def test_unknown_published_table_and_table_key():
    s = base_spec()
    s["variants"][0]["publication"] = {
        "filter_1": {"tables": [{"name": "experiment.filterd"}, {"name": "experiment.rows", "filter": "k > 0"}]}
    }
    assert_error(
        s,
        "variants[0].publication.filter_1.tables[0].name",
        "no table experiment.filterd",
        "did you mean experiment.filtered",
    )
    assert_error(s, "variants[0].publication.filter_1.tables[1].filter", "unknown key", "known: columns, name, where")


def test_row_filter_and_column_list_need_a_15_publisher():
    s = base_spec()
    s["variants"][0]["publication"] = {
        "filter_1": {"tables": [{"name": "experiment.filtered", "where": "grp = 0", "columns": ["k"]}]}
    }
    f = facts()
    f["publisher"]["major"] = 14
    exc = assert_error(
        s, "variants[0].publication.filter_1.tables[0].where", "a row filter needs PostgreSQL 15+", facts=f
    )
    assert (
        "variants[0].publication.filter_1.tables[0].columns",
        "a column list needs PostgreSQL 15+ on the publisher (publisher is 14)",
    ) in exc.errors


@pytest.mark.parametrize(
    ("limits", "path", "words"),
    [
        ({"cpu": 1}, "variants[0].limits.cpu", ["unknown key", "did you mean cpus"]),
        ({"cpus": 0}, "variants[0].limits.cpus", ["more than 0"]),
        ({"cpus": 4}, "variants[0].limits.cpus", ["more than this machine's 2 cores"]),
        ({"memory": "lots"}, "variants[0].limits.memory", ["not a size"]),
        ({"memory": "1m"}, "variants[0].limits.memory", ["minimum"]),
    ],
)
def test_bad_limits(limits, path, words):
    s = base_spec()
    s["variants"][0]["limits"] = limits
    assert_error(s, path, *words)


def test_limits_on_a_node_without_container():
    s = base_spec()
    s["variants"][0]["limits"] = {"cpus": 0.5}
    f = facts()
    f["nodes"]["subscriber1"]["container"] = ""
    assert_error(s, "variants[0].limits", "subscriber1 is not a Docker container", facts=f)


def test_unknown_requires_key():
    s = base_spec()
    s["variants"][2]["requires"] = {"subscriber_version": 16}
    assert_error(s, "variants[2].requires.subscriber_version", "unknown key", "did you mean subscriber_major")


def test_unknown_node():
    s = base_spec()
    s["nodes"] = ["subscriber1", "subscriber3"]
    assert_error(s, "nodes[1]", "unknown node 'subscriber3'", "subscribers: subscriber1, subscriber2")


def test_nodes_select_a_subset():
    s = base_spec()
    s["nodes"] = ["subscriber2"]
    plan = validate(s, FILE, facts=facts())
    assert plan["nodes"] == ["subscriber2"]
    assert plan["notes"] == []
    assert all(v["nodes"] == ["subscriber2"] for v in plan["variants"])


def test_variant_impossible_everywhere_is_a_note_not_a_silent_drop():
    s = base_spec()
    s["nodes"] = ["subscriber1"]
    plan = validate(s, FILE, facts=facts())
    assert [v["name"] for v in plan["variants"]] == ["off", "on", "parallel"]
    assert {r["variant"] for r in plan["runs"]} == {"off", "on"}
    assert any("parallel does not run on subscriber1" in n for n in plan["notes"])


def test_no_variant_can_run():
    s = base_spec()
    s["variants"] = [s["variants"][2]]
    s["nodes"] = ["subscriber1"]
    assert_error(s, "variants", "no variant can run on any node")


def test_requires_publisher_major():
    s = base_spec()
    s["variants"][0]["requires"] = {"publisher_major": 16}
    plan = validate(s, FILE, facts=facts())
    assert plan["variants"][0]["nodes"] == []
    assert any("requires publisher_major 16" in n for n in plan["notes"])


def test_duplicate_and_boolean_variant_names():
    s = base_spec()
    s["variants"][1]["name"] = "off"
    assert_error(s, "variants[1].name", "duplicate variant name")
    s = base_spec()
    s["variants"][0]["name"] = False
    assert_error(s, "variants[0].name", "boolean", "quote it")


@pytest.mark.parametrize(("value", "words"), [(0, ["at least 1"]), ("3", ["expected an integer"]), (2.5, ["integer"])])
def test_bad_repeat(value, words):
    s = base_spec()
    s["repeat"] = value
    assert_error(s, "repeat", *words)


def test_bad_repeat_override():
    assert_error(base_spec(), "repeat (experiment_repeat)", "at least 1", repeat=0)


def test_bad_baseline_and_question():
    s = base_spec()
    s["baseline"] = "dump"
    s["question"] = ""
    exc = errors_of(s)
    assert ("baseline", "'dump' is not one of copy") in exc.errors
    assert any(p == "question" for p, _reason in exc.errors)


def test_every_error_is_reported_at_once():
    s = base_spec()
    s["extra"] = 1
    s["measure"] = ["nope"]
    s["workload"][0]["nope"] = 1
    s["variants"][0]["subscription"] = {"nope": 1}
    paths = {p for p, _reason in errors_of(s).errors}
    assert {"extra", "measure[0]", "workload[0].nope", "variants[0].subscription.nope"} <= paths


def test_yaml_duplicate_key_and_syntax_error():
    with pytest.raises(SpecError, match=r"^experiments/streaming.yml: not valid YAML: .*duplicate key 'repeat'"):
        load_text("question: q\nrepeat: 1\nrepeat: 2\n", FILE)
    with pytest.raises(SpecError, match=r"^experiments/streaming.yml: not valid YAML"):
        load_text("question: [unclosed\n", FILE)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read the file"):
        spec_mod.load_file(str(tmp_path / "nope.yml"), "experiments/nope.yml")


def test_validation_does_not_change_its_inputs():
    s = base_spec()
    f = facts()
    before = (copy.deepcopy(s), copy.deepcopy(f))
    validate(s, FILE, facts=f)
    assert (s, f) == before


SHIPPED = sorted((REPO_ROOT / "experiments").glob("*.yml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_experiment_files_are_valid(path):
    """Every experiments/*.yml passes the file checks (the server checks run in experiment_plan)."""
    display = f"experiments/{path.name}"
    plan = validate(spec_mod.load_file(str(path), display), display)
    assert plan["runs"]
    assert plan["question"].endswith("?")
