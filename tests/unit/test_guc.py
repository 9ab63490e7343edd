"""Server parameter parsing, comparison, display and change planning (no database)."""

from __future__ import annotations

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils.guc import (
    Guc,
    GucError,
    SettingState,
    parse_bool,
    plan,
    predict,
    split_list,
    unit_info,
)

# pg_settings rows as PostgreSQL 15+ reports them (only the columns the code reads).
ROWS = {
    "work_mem": dict(vartype="integer", unit="kB", context="user", min_val="64", max_val="2147483647",
                     boot_val="4096", setting="4096"),
    "shared_buffers": dict(vartype="integer", unit="8kB", context="postmaster", min_val="16",
                           max_val="1073741823", boot_val="1024", setting="16384"),
    "max_wal_size": dict(vartype="integer", unit="MB", context="sighup", min_val="2", max_val="2147483647",
                         boot_val="1024", setting="1024"),
    "checkpoint_timeout": dict(vartype="integer", unit="s", context="sighup", min_val="30", max_val="86400",
                               boot_val="300", setting="300"),
    "statement_timeout": dict(vartype="integer", unit="ms", context="user", min_val="0", max_val="2147483647",
                              boot_val="0", setting="0"),
    "log_rotation_age": dict(vartype="integer", unit="min", context="sighup", min_val="0", max_val="35791394",
                             boot_val="1440", setting="1440"),
    "max_slot_wal_keep_size": dict(vartype="integer", unit="MB", context="sighup", min_val="-1",
                                   max_val="2147483647", boot_val="-1", setting="-1"),
    "max_wal_senders": dict(vartype="integer", unit=None, context="postmaster", min_val="0", max_val="262143",
                            boot_val="10", setting="10"),
    "vacuum_cost_delay": dict(vartype="real", unit="ms", context="user", min_val="0", max_val="100",
                              boot_val="0", setting="0"),
    "checkpoint_completion_target": dict(vartype="real", unit=None, context="sighup", min_val="0", max_val="1",
                                         boot_val="0.9", setting="0.9"),
    "track_commit_timestamp": dict(vartype="bool", unit=None, context="postmaster", boot_val="off",
                                   setting="off"),
    "wal_level": dict(vartype="enum", unit=None, context="postmaster", enumvals=["minimal", "replica", "logical"],
                      boot_val="replica", setting="replica"),
    "synchronous_commit": dict(vartype="enum", unit=None, context="user",
                               enumvals=["local", "remote_write", "remote_apply", "on", "off"], boot_val="on",
                               setting="on"),
    "shared_preload_libraries": dict(vartype="string", unit=None, context="postmaster", boot_val="", setting=""),
    "search_path": dict(vartype="string", unit=None, context="user", boot_val='"$user", public',
                        setting='"$user", public'),
    "application_name": dict(vartype="string", unit=None, context="user", boot_val="", setting=""),
    "server_version": dict(vartype="string", unit=None, context="internal", boot_val="15.4", setting="15.4"),
    "max_replication_slots": dict(vartype="integer", unit=None, context="postmaster", min_val="0",
                                  max_val="262143", boot_val="10", setting="10"),
}  # fmt: skip


def guc(name, **overrides):
    row = {"name": name, "source": "default", **ROWS[name], **overrides}
    return Guc(row)


def gucs(**overrides_by_name):
    return {name: guc(name, **overrides_by_name.get(name, {})) for name in ROWS}


AUTO = "/data/postgresql.auto.conf"
CONF = "/data/postgresql.conf"


def file_row(seqno, name, setting, sourcefile=AUTO):
    return {"seqno": seqno, "name": name, "setting": setting, "sourcefile": sourcefile, "applied": True}


# -- units ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("8kB", ("memory", 8192)),
        ("kB", ("memory", 1024)),
        ("MB", ("memory", 1024**2)),
        ("B", ("memory", 1)),
        ("ms", ("time", 1000)),
        ("s", ("time", 10**6)),
        ("min", ("time", 60 * 10**6)),
        (None, (None, 1)),
        ("", (None, 1)),
    ],
)
def test_unit_info(unit, expected):
    assert unit_info(unit) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("work_mem", "1GB", 1048576),
        ("work_mem", "1024MB", 1048576),
        ("work_mem", "1048576kB", 1048576),
        ("work_mem", "1048576", 1048576),
        ("work_mem", 1048576, 1048576),
        ("work_mem", " 64 MB ", 65536),
        ("max_wal_senders", "0x10", 16),
        ("max_wal_senders", "010", 8),  # strtol base 0, like PostgreSQL
        ("work_mem", "65536B", 64),
        ("work_mem", "1.5MB", 1536),
        ("work_mem", "1e3", 1000),
        ("shared_buffers", "1GB", 131072),
        ("shared_buffers", "128MB", 16384),
        ("shared_buffers", "131080kB", 16385),
        ("shared_buffers", 16384, 16384),
        ("max_wal_size", "1GB", 1024),
        ("max_wal_size", "1.5GB", 1536),
        ("checkpoint_timeout", "5min", 300),
        ("checkpoint_timeout", "300s", 300),
        ("checkpoint_timeout", "300000ms", 300),
        ("checkpoint_timeout", "1h", 3600),
        ("checkpoint_timeout", "1d", 86400),
        ("statement_timeout", "1.5s", 1500),
        ("statement_timeout", "1500us", 2),  # rounds like rint()
        ("log_rotation_age", "1d", 1440),
        ("log_rotation_age", "90s", 2),
        ("max_slot_wal_keep_size", -1, -1),
        ("max_slot_wal_keep_size", "-1", -1),
        ("max_slot_wal_keep_size", "10GB", 10240),
        ("max_wal_senders", "20", 20),
        ("max_wal_senders", 20.0, 20),
    ],
)
def test_integer_parsing_is_unit_aware(name, value, expected):
    assert guc(name).parse(value) == expected


@pytest.mark.parametrize(
    ("name", "left", "right"),
    [
        ("work_mem", "1GB", "1024MB"),
        ("checkpoint_timeout", "5min", "300s"),
        ("shared_buffers", "128MB", 16384),
        ("vacuum_cost_delay", "2ms", "0.002s"),
        ("vacuum_cost_delay", "2000us", 2),
        ("checkpoint_completion_target", "0.9", 0.9),
        ("track_commit_timestamp", "on", True),
        ("wal_level", "Logical", "logical"),
    ],
)
def test_equivalent_values_compare_equal(name, left, right):
    g = guc(name)
    assert g.equal(g.parse(left), g.parse(right))


def test_different_values_compare_unequal():
    g = guc("work_mem")
    assert not g.equal(g.parse("1GB"), g.parse("1023MB"))
    r = guc("checkpoint_completion_target")
    assert not r.equal(r.parse(0.9), r.parse(0.5))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("work_mem", "8 KB", 'Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".'),
        ("checkpoint_timeout", "5 mins", 'Valid units for this parameter are "us", "ms", "s", "min", "h", and "d".'),
        ("checkpoint_timeout", "5MB", "Valid units for this parameter are"),
        ("max_wal_senders", "5kB", "takes no unit"),
        ("max_wal_senders", "ten", "invalid integer value"),
        ("max_wal_senders", True, "expected an integer, got boolean"),
        ("max_wal_senders", [1], "got a list"),
        ("max_wal_senders", {"a": 1}, "got a dict"),
        ("max_wal_senders", None, "null"),
        ("max_wal_senders", 300000, "outside the valid range 0 .. 262143"),
        ("max_wal_senders", -1, "outside the valid range"),
        ("work_mem", "3TB", "outside the range of an integer"),
        ("work_mem", "32kB", "outside the valid range 64 .. 2147483647 (unit kB; 64kB .. 2147483647kB)"),
        ("checkpoint_timeout", "10s", "10s is outside the valid range 30 .. 86400 (unit s; 30s .. 1d)"),
        ("checkpoint_completion_target", 1.5, "outside the valid range"),
        ("vacuum_cost_delay", False, "expected a number, got boolean"),
        ("work_mem", "99999999999999", "outside the range of an integer"),
        ("work_mem", "09", "invalid integer"),
    ],
)
def test_invalid_numbers_fail_clearly(name, value, message):
    with pytest.raises(GucError, match=None) as info:
        guc(name).parse(value)
    assert message in str(info.value)


def test_range_check_can_be_skipped_for_file_values():
    assert guc("max_wal_senders").parse(300000, validate=False) == 300000


# -- booleans and enums ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [True, 1, "on", "ON", "true", "t", "tr", "yes", "y", "1", " On "]
)  # fmt: skip
def test_parse_bool_true(value):
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", [False, 0, "off", "of", "false", "f", "no", "n", "0", "FALSE"])
def test_parse_bool_false(value):
    assert parse_bool(value) is False


@pytest.mark.parametrize("value", ["o", "maybe", "", "2", 2, 1.0, None, "onn"])
def test_parse_bool_invalid(value):
    with pytest.raises(GucError):
        parse_bool(value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("wal_level", "logical", "logical"),
        ("wal_level", "LOGICAL", "logical"),
        ("wal_level", " Replica ", "replica"),
        ("wal_level", "hot_standby", "replica"),
        ("wal_level", "archive", "replica"),
        ("synchronous_commit", True, "on"),
        ("synchronous_commit", False, "off"),
        ("synchronous_commit", "yes", "on"),
        ("synchronous_commit", "0", "off"),
        ("synchronous_commit", 1, "on"),
        ("synchronous_commit", "Remote_Apply", "remote_apply"),
    ],
)
def test_enum_normalisation(name, value, expected):
    assert guc(name).parse(value) == expected


def test_invalid_enum_lists_valid_values():
    with pytest.raises(GucError, match="valid values are: minimal, replica, logical"):
        guc("wal_level").parse("logicl")
    with pytest.raises(GucError):
        guc("wal_level").parse(True)  # wal_level has no on/off


# -- strings and lists ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("  ", ()),
        ("pg_stat_statements", ("pg_stat_statements",)),
        ("a,b", ("a", "b")),
        ("a, b ,  c", ("a", "b", "c")),
        ('"$user", public', ("$user", "public")),
        ('"My Schema", "a,b", "x""y"', ("My Schema", "a,b", 'x"y')),
        ('""', ("",)),
    ],
)
def test_split_list(text, expected):
    assert split_list(text) == expected


def test_list_parameters_accept_lists_and_strings():
    g = guc("shared_preload_libraries")
    assert g.parse("pg_stat_statements, auto_explain") == ("pg_stat_statements", "auto_explain")
    assert g.parse(["pg_stat_statements", "auto_explain"]) == ("pg_stat_statements", "auto_explain")
    assert g.parse("") == ()
    assert g.parse([]) == ()
    with pytest.raises(GucError, match="empty list element"):
        g.parse("a,,b")
    with pytest.raises(GucError):
        g.parse(["a", 1])
    assert guc("search_path").display(("$user", "public", "My Schema")) == '"$user", public, "My Schema"'
    assert guc("search_path").sql_values(("$user", "public")) == ["$user", "public"]
    with pytest.raises(GucError):
        g.sql_values(())


def test_plain_strings():
    g = guc("application_name")
    assert g.parse("a, b") == "a, b"
    assert g.parse(12) == "12"
    with pytest.raises(GucError, match="boolean"):
        g.parse(True)
    with pytest.raises(GucError, match="got a list"):
        g.parse(["a"])


# -- display ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canonical", "shown"),
    [
        ("shared_buffers", 16384, "128MB"),
        ("shared_buffers", 16385, "131080kB"),
        ("shared_buffers", 131072, "1GB"),
        ("work_mem", 4096, "4MB"),
        ("work_mem", 1000, "1000kB"),
        ("max_wal_size", 1024, "1GB"),
        ("checkpoint_timeout", 300, "5min"),
        ("checkpoint_timeout", 301, "301s"),
        ("checkpoint_timeout", 86400, "1d"),
        ("statement_timeout", 1500, "1500ms"),
        ("statement_timeout", 0, "0"),
        ("max_slot_wal_keep_size", -1, "-1"),
        ("log_rotation_age", 1440, "1d"),
        ("max_wal_senders", 10, 10),
        ("vacuum_cost_delay", 2.0, "2ms"),
        ("vacuum_cost_delay", 0.5, "0.5ms"),
        ("checkpoint_completion_target", 0.9, 0.9),
        ("track_commit_timestamp", True, "on"),
        ("wal_level", "logical", "logical"),
        ("work_mem", None, None),
    ],
)
def test_display_like_show(name, canonical, shown):
    assert guc(name).display(canonical) == shown


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("shared_buffers", "131080kB"),
        ("work_mem", "1GB"),
        ("checkpoint_timeout", "301s"),
        ("statement_timeout", "1.5s"),
        ("vacuum_cost_delay", "0.5ms"),
        ("max_slot_wal_keep_size", -1),
        ("search_path", '"$user", public, "A b"'),
        ("track_commit_timestamp", "yes"),
    ],
)
def test_display_round_trips(name, value):
    g = guc(name)
    canonical = g.parse(value)
    assert g.equal(g.parse(g.display(canonical)), canonical)
    assert g.equal(g.parse(g.sql_values(canonical)[0] if not isinstance(canonical, tuple) else canonical), canonical)


# -- state and planning ------------------------------------------------------------------------------


def test_state_sees_pending_auto_conf_value():
    g = guc("wal_level", setting="logical", source="configuration file")
    files = {"last": "replica", "auto": "replica", "base": "logical"}
    state = SettingState(g, files)
    assert state.running == "logical"
    assert state.target == "replica"
    assert state.pending == "replica"
    assert state.as_dict() == {
        "running": "logical",
        "pending": "replica",
        "unit": None,
        "context": "postmaster",
        "source": "configuration file",
        "pending_restart": True,
    }


def test_state_without_file_entry_uses_running_default():
    state = SettingState(guc("work_mem"), None)
    assert state.target == 4096
    assert state.pending is None
    assert state.base == 4096


def _harness_files(*extra):
    rows = [file_row(1, "wal_level", "logical", CONF), file_row(2, "max_wal_senders", "10", CONF)]
    return rows + list(extra)


def test_plan_undoes_pending_value_with_reset():
    all_gucs = gucs(wal_level={"setting": "logical", "source": "configuration file"})
    rows = _harness_files(file_row(3, "wal_level", "replica"))
    result = plan(all_gucs, rows, {"wal_level": "logical"})
    assert not result.errors
    assert result.actions == [("reset", "wal_level", None)]
    assert result.previous == {"wal_level": "replica"}
    assert result.changed


def test_plan_undoes_pending_value_with_set_when_default_differs():
    all_gucs = gucs(wal_level={"setting": "logical", "source": "configuration file"})
    rows = [file_row(1, "wal_level", "replica")]  # only auto.conf; boot value is replica
    result = plan(all_gucs, rows, {"wal_level": "logical"})
    assert result.actions == [("set", "wal_level", ["logical"])]


def test_plan_sets_pending_value_and_is_idempotent():
    all_gucs = gucs(wal_level={"setting": "logical", "source": "configuration file"})
    first = plan(all_gucs, _harness_files(), {"wal_level": "replica"})
    assert first.actions == [("set", "wal_level", ["replica"])]
    assert first.previous == {"wal_level": "logical"}
    # The next run sees the pending value in postgresql.auto.conf: nothing to do.
    second = plan(all_gucs, _harness_files(file_row(3, "wal_level", "replica")), {"wal_level": "replica"})
    assert second.actions == []
    assert not second.changed
    assert second.states["wal_level"].as_dict()["pending_restart"] is True
    # Passing `previous` back undoes it.
    undo = plan(all_gucs, _harness_files(file_row(3, "wal_level", "replica")), first.previous)
    assert undo.actions == [("reset", "wal_level", None)]


def test_plan_unit_equivalent_value_is_no_change():
    all_gucs = gucs(work_mem={"setting": "1048576", "source": "configuration file"})
    result = plan(all_gucs, [file_row(1, "work_mem", "1GB")], {"work_mem": "1024MB"})
    assert result.actions == []
    assert not result.reload
    assert not result.changed


def test_plan_reloadable_change_needs_reload():
    result = plan(gucs(), [], {"work_mem": "8MB", "checkpoint_timeout": "5min"})
    assert result.actions == [("set", "work_mem", ["8MB"])]
    assert result.reload
    assert result.previous == {"work_mem": "4MB"}


def test_plan_reloads_when_file_already_has_the_value():
    # Someone wrote the file without reloading: the running value still differs.
    result = plan(gucs(), [file_row(1, "work_mem", "8MB")], {"work_mem": "8MB"})
    assert result.actions == []
    assert result.reload
    assert result.changed


def test_plan_validates_everything_first():
    result = plan(
        gucs(),
        [],
        {"work_mem": "8MB", "wal_levl": "logical", "max_wal_senders": 10**6, "wal_level": "nope"},
        ["shared_bufers"],
    )
    assert result.actions == []
    text = "; ".join(result.errors)
    assert "unknown parameter 'wal_levl'; did you mean: wal_level" in text
    assert "max_wal_senders: 1000000 is outside the valid range 0 .. 262143" in text
    assert "wal_level: invalid value 'nope'" in text
    assert "unknown parameter 'shared_bufers'; did you mean: shared_buffers" in text


def test_plan_rejects_internal_duplicate_and_conflicting_names():
    result = plan(gucs(), [], {"server_version": "16", "Work_Mem": "8MB", "work_mem": "8MB"}, ["work_mem"])
    text = "; ".join(result.errors)
    assert "server_version is a read-only parameter" in text
    assert "work_mem is given twice" in text
    assert "work_mem is both in settings and in reset" in text


def test_plan_names_are_case_insensitive():
    result = plan(gucs(), [], {"WORK_MEM": "8MB"})
    assert result.actions == [("set", "work_mem", ["8MB"])]


def test_plan_reset():
    rows = [file_row(1, "work_mem", "8MB"), file_row(2, "max_wal_senders", "20")]
    all_gucs = gucs(work_mem={"setting": "8192", "source": "configuration file"})
    result = plan(all_gucs, rows, reset=["work_mem", "max_wal_senders", "checkpoint_timeout"])
    assert result.actions == [("reset", "work_mem", None), ("reset", "max_wal_senders", None)]
    assert result.previous == {"work_mem": "8MB", "max_wal_senders": 20}
    assert result.desired["work_mem"] == 4096
    assert result.reload


def test_plan_custom_placeholder_parameter():
    result = plan(gucs(), [], {"pg_stat_statements.max": 10000})
    assert result.actions == [("set", "pg_stat_statements.max", ["10000"])]
    bad = plan(gucs(), [], {"pg_stat_statements": 1})
    assert bad.errors


def test_plan_refuses_command_line_values():
    all_gucs = gucs(wal_level={"setting": "logical", "source": "command line"})
    assert plan(all_gucs, [], {"wal_level": "logical"}).errors == []
    result = plan(all_gucs, [], {"wal_level": "replica"})
    assert "source: command line" in result.errors[0]


def test_plan_empty_list():
    rows = [file_row(1, "shared_preload_libraries", "pg_stat_statements")]
    all_gucs = gucs(shared_preload_libraries={"setting": "pg_stat_statements", "source": "configuration file"})
    assert plan(all_gucs, rows, {"shared_preload_libraries": []}).actions == [
        ("reset", "shared_preload_libraries", None)
    ]
    rows = [file_row(1, "shared_preload_libraries", "pg_stat_statements", CONF)]
    result = plan(all_gucs, rows, {"shared_preload_libraries": ""})
    assert "cannot write an empty list" in result.errors[0]


def test_predict_after_reload():
    state = SettingState(guc("work_mem"), None)
    after = predict(state, 8192, reloaded=True)
    assert after["running"] == "8MB"
    assert after["pending"] is None
    state = SettingState(guc("wal_level", setting="logical", source="configuration file"), None)
    after = predict(state, "replica", reloaded=True)
    assert after == {**after, "running": "logical", "pending": "replica", "pending_restart": True}


def test_plan_refuses_when_alter_system_is_disabled():
    all_gucs = gucs()
    all_gucs["allow_alter_system"] = Guc({"name": "allow_alter_system", "vartype": "bool", "setting": "off"})
    assert plan(all_gucs, [], {"work_mem": "4MB"}).errors == []  # nothing to write: fine
    result = plan(all_gucs, [], {"work_mem": "8MB"})
    assert result.actions == []
    assert "allow_alter_system = off" in result.errors[0]
