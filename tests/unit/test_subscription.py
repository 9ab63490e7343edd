"""The subscription module's pure logic: option parsing, SQL, catalog rows and the statement plan (no database)."""

from __future__ import annotations

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _subscription_plan as mod
from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import parse_conninfo

psycopg = pytest.importorskip("psycopg")

PASSWORD = "p a'ss\\w=rd"


def params(**kwargs):
    base = {
        "name": "sub1",
        "state": "present",
        "publications": None,
        "publisher": None,
        "conninfo": None,
        "enabled": None,
        "copy_data": None,
        "create_slot": None,
        "slot_name": None,
        "synchronous_commit": None,
        "binary": None,
        "streaming": None,
        "two_phase": None,
        "disable_on_error": None,
        "origin": None,
        "run_as_owner": None,
        "password_required": None,
        "failover": None,
        "refresh": False,
        "recreate": False,
        "skip_lsn": None,
        "wait_for_sync": False,
        "sync_timeout": 300,
    }
    base.update(kwargs)
    return base


def text(statement):
    return statement.as_string(None) if statement is not None else None


# ----------------------------------------------------------------------------------------------
# option parsing
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("off", "off"),
        ("OFF", "off"),
        (False, "off"),
        ("False", "off"),
        ("no", "off"),
        ("0", "off"),
        (True, "on"),
        ("true", "on"),
        ("yes", "on"),
        ("local", "local"),
        ("Remote_Apply", "remote_apply"),
        ("remote_write", "remote_write"),
        (None, None),
    ],
)
def test_synchronous_commit_normalization(value, expected):
    assert mod.normalize_synchronous_commit(value) == expected


def test_synchronous_commit_invalid():
    with pytest.raises(mod.OptionError, match="synchronous_commit: 'sometimes' is not one of"):
        mod.normalize_synchronous_commit("sometimes")
    assert mod.stored_synchronous_commit("weird") == "weird"


@pytest.mark.parametrize(
    ("value", "expected"), [("parallel", "parallel"), (True, "on"), ("False", "off"), ("ON", "on"), (None, None)]
)
def test_streaming_normalization(value, expected):
    assert mod.normalize_streaming(value) == expected


def test_streaming_invalid():
    with pytest.raises(mod.OptionError):
        mod.normalize_streaming("fast")


def test_lsn_parsing():
    assert mod.format_lsn(mod.parse_lsn("0/14c0378")) == "0/14C0378"
    assert mod.parse_lsn("1/0") == 1 << 32
    assert mod.parse_lsn("0/10") > mod.parse_lsn("0/F")
    for bad in ("", "14C0378", "0/", "x/1", "0/123456789"):
        with pytest.raises(mod.OptionError):
            mod.parse_lsn(bad)


def test_slot_names():
    assert mod.normalize_slot_name(None) is None
    assert mod.normalize_slot_name("NONE") == ""
    assert mod.normalize_slot_name("none") == ""
    assert mod.normalize_slot_name("my_slot_1") == "my_slot_1"
    for bad in ("MySlot", "a-b", "x" * 64):
        with pytest.raises(mod.OptionError):
            mod.normalize_slot_name(bad)


def test_publications_parsing():
    assert mod.parse_publications(None) is None
    assert mod.parse_publications(["leadership_pub", '"LeadPub"', "Tech"]) == ["leadership_pub", "LeadPub", "tech"]
    with pytest.raises(mod.OptionError, match="at least one"):
        mod.parse_publications([])
    with pytest.raises(mod.OptionError, match="more than once"):
        mod.parse_publications(["a", "A"])


def test_desired_builds_a_quoted_connection():
    d = mod.Desired(params(publisher={"host": "db", "port": 5432, "dbname": "app", "password": PASSWORD}))
    assert parse_conninfo(d.conn_text) == {"host": "db", "port": "5432", "dbname": "app", "password": PASSWORD}
    assert d.secrets() == [PASSWORD]
    raw = mod.Desired(params(conninfo=d.conn_text))
    assert raw.conn_params == d.conn_params
    assert sorted(raw.secrets()) == sorted([PASSWORD, d.conn_text])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conninfo": "host=db password"}, "conninfo: missing"),
        ({"conninfo": "  "}, "conninfo: the connection string is empty"),
        ({"publisher": {}}, "publisher: give at least one"),
        ({"slot_name": "none", "enabled": True}, "slot_name: NONE needs enabled: false"),
        ({"slot_name": "none", "create_slot": True}, "conflicts with create_slot"),
        ({"wait_for_sync": True, "enabled": False}, "wait_for_sync: true needs an enabled subscription"),
        ({"sync_timeout": 0}, "sync_timeout"),
        ({"skip_lsn": "bogus"}, "skip_lsn"),
        ({"name": '"unterminated'}, "name: invalid name"),
    ],
)
def test_desired_rejects(kwargs, message):
    with pytest.raises(mod.OptionError, match=message):
        mod.Desired(params(**kwargs))


def test_error_for_conninfo_never_shows_the_password():
    with pytest.raises(mod.OptionError) as info:
        mod.Desired(params(conninfo="host=db password=top secret"))
    assert "top" not in str(info.value)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("major", "expected"),
    [
        (13, {"binary", "streaming", "two_phase", "skip_lsn", "origin", "failover"}),
        (15, {"streaming", "origin", "failover"}),
        (16, {"failover"}),
        (17, set()),
    ],
)
def test_version_problems(major, expected):
    d = mod.Desired(
        params(binary=True, streaming="parallel", two_phase=True, skip_lsn="0/1", origin="none", failover=True)
    )
    problems = mod.version_problems(d, major)
    assert {option for option, _minimum, _reason in problems} == expected
    for option, minimum, _reason in problems:
        assert minimum > major, option


# ----------------------------------------------------------------------------------------------
# SQL
# ----------------------------------------------------------------------------------------------


def test_create_sql_quotes_everything():
    conninfo = "host=db password='it\\'s'"
    statement = mod.create_sql(
        "My Sub", conninfo, ["LeadPub", "b"], {"enabled": False, "slot_name": None, "synchronous_commit": "local"}
    )
    assert text(statement) == (
        'CREATE SUBSCRIPTION "My Sub" CONNECTION '
        " E'host=db password=''it\\\\''s''' PUBLICATION \"LeadPub\", \"b\""
        " WITH (enabled = false, slot_name = NONE, synchronous_commit = 'local')"
    )


def test_publication_change_picks_add_drop_or_set():
    def change(current, desired, refresh=True, copy_data=None):
        statement, result = mod.publication_change("s", current, desired, refresh, copy_data)
        return text(statement), result

    assert change(["a"], ["a"]) == (None, ["a"])
    assert change(["a", "b"], ["b", "a"]) == (None, ["a", "b"])
    assert change(["a"], ["a", "b"]) == ('ALTER SUBSCRIPTION "s" ADD PUBLICATION "b" WITH (refresh = true)', ["a", "b"])
    assert change(["a", "b"], ["b"], copy_data=False) == (
        'ALTER SUBSCRIPTION "s" DROP PUBLICATION "a" WITH (refresh = true, copy_data = false)',
        ["b"],
    )
    assert change(["a"], ["c", "b"], refresh=False, copy_data=True) == (
        'ALTER SUBSCRIPTION "s" SET PUBLICATION "c", "b" WITH (refresh = false)',
        ["c", "b"],
    )
    assert text(mod.refresh_sql("s", None)) == 'ALTER SUBSCRIPTION "s" REFRESH PUBLICATION'
    assert text(mod.refresh_sql("s", False)) == 'ALTER SUBSCRIPTION "s" REFRESH PUBLICATION WITH (copy_data = false)'


# ----------------------------------------------------------------------------------------------
# catalog rows
# ----------------------------------------------------------------------------------------------


def row(major, **kwargs):
    data = {
        "oid": 16400,
        "name": "sub1",
        "owner": "postgres",
        "enabled": True,
        "conninfo": f"host=db password='{PASSWORD.replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'",
        "slot_name": "sub1",
        "synchronous_commit": "off",
        "publications": ["p1"],
    }
    if major >= 14:
        data.update(binary=False, streaming="false" if major < 16 else "f")
    if major >= 15:
        data.update(two_phase_state="d", disable_on_error=False, skip_lsn="0/0")
    if major >= 16:
        data.update(origin="any", run_as_owner=False, password_required=True)
    if major >= 17:
        data.update(failover=False)
    data.update(kwargs)
    return data


def test_state_from_row_by_version():
    assert mod.state_from_row(None) is None
    s13 = mod.state_from_row(row(13))
    assert "binary" not in s13
    assert "two_phase" not in s13
    s15 = mod.state_from_row(row(15, streaming="true", two_phase_state="e", skip_lsn="0/1A"))
    assert s15["streaming"] == "on"
    assert s15["two_phase"] is True
    assert s15["two_phase_state"] == "enabled"
    assert s15["skip_lsn"] == "0/1A"
    s16 = mod.state_from_row(row(16, streaming="p", synchronous_commit="true"))
    assert s16["streaming"] == "parallel"
    assert s16["synchronous_commit"] == "on"
    assert mod.state_from_row(row(15))["skip_lsn"] is None


def test_public_state_masks_the_password():
    state = mod.state_from_row(row(17))
    public = mod.public_state(state, tables=[])
    assert public["conninfo"] == "host=db password=********"
    assert PASSWORD not in repr(public)
    assert "_conninfo" not in public
    assert public["tables"] == []
    assert "tables" not in mod.diff_state(state)
    assert mod.public_state(None) == {}


def test_default_options_by_version():
    assert mod.default_options("s", 13) == {"enabled": True, "slot_name": "s", "synchronous_commit": "off"}
    assert mod.default_options("s", 17)["streaming"] == "off"
    assert mod.default_options("s", 18)["streaming"] == "parallel"
    assert mod.default_options("s", 18)["failover"] is False


# ----------------------------------------------------------------------------------------------
# the plan (order of statements, what fails before anything is changed)
# ----------------------------------------------------------------------------------------------


class Failed(Exception):
    pass


class FakeModule:
    check_mode = False

    def __init__(self, major):
        self.server_major = major
        self.warnings = []

    def fail(self, msg, **_kwargs):
        raise Failed(msg)

    def add_secret(self, *values):
        pass


def plan(major, current_kwargs=None, **kwargs):
    m = FakeModule(major)
    d = mod.Desired(params(**kwargs))
    module = mod.SubscriptionModule(m, d)
    module.session = {"current_user": "postgres"}
    module.try_query = lambda *_a, **_k: None
    current = mod.state_from_row(row(major, **(current_kwargs or {})))
    current["_conn_params"] = parse_conninfo(current["_conninfo"])
    target = module.target_state(current)
    problems = module.not_alterable(current, target)
    if problems:
        raise Failed("; ".join(f"{k}: {r}" for k, r in problems))
    steps = module.plan_alter(current, target)
    return [(s.kind, text(s.statement), s.autocommit) for s in steps], module


def test_plan_nothing_to_do():
    steps, _module = plan(17, publications=["p1"], binary=False, publisher={"host": "db", "password": PASSWORD})
    assert steps == []


def test_plan_options_connection_and_enable_in_one_transaction():
    steps, _module = plan(
        16,
        current_kwargs={"enabled": False},
        enabled=True,
        binary=True,
        origin="none",
        publisher={"host": "db2", "password": PASSWORD},
    )
    assert [s[0] for s in steps] == ["main", "main", "main"]
    assert steps[0][1].startswith('ALTER SUBSCRIPTION "sub1" CONNECTION ')
    assert steps[1][1] == "ALTER SUBSCRIPTION \"sub1\" SET (binary = true, origin = 'none')"
    assert steps[2][1] == 'ALTER SUBSCRIPTION "sub1" ENABLE'
    assert not any(s[2] for s in steps)


def test_plan_refresh_first_when_possible():
    steps, _module = plan(16, publications=["p1", "p2"], enabled=False)
    assert steps == [
        ("refresh", 'ALTER SUBSCRIPTION "sub1" ADD PUBLICATION "p2" WITH (refresh = true)', True),
        ("main", 'ALTER SUBSCRIPTION "sub1" DISABLE', False),
    ]


def test_plan_refresh_after_connection_change():
    steps, _module = plan(16, publications=["p2"], publisher={"host": "elsewhere"})
    assert [s[0] for s in steps] == ["main", "refresh"]
    assert steps[1][1] == 'ALTER SUBSCRIPTION "sub1" SET PUBLICATION "p2" WITH (refresh = true)'


def test_plan_refresh_after_enable():
    steps, _module = plan(16, current_kwargs={"enabled": False}, enabled=True, refresh=True, copy_data=False)
    assert steps == [
        ("main", 'ALTER SUBSCRIPTION "sub1" ENABLE', False),
        ("refresh", 'ALTER SUBSCRIPTION "sub1" REFRESH PUBLICATION WITH (copy_data = false)', True),
    ]


def test_plan_disabled_publication_change_without_refresh_warns():
    steps, module = plan(16, current_kwargs={"enabled": False}, publications=["p3"])
    assert steps == [("main", 'ALTER SUBSCRIPTION "sub1" SET PUBLICATION "p3" WITH (refresh = false)', False)]
    assert "without a refresh" in module.warnings[0]


def test_plan_refresh_disabled_fails():
    with pytest.raises(Failed, match="refresh: true needs an enabled subscription"):
        plan(16, current_kwargs={"enabled": False}, refresh=True)


def test_plan_two_phase_enabled_refresh_needs_copy_data_false():
    with pytest.raises(Failed, match="copy_data: false"):
        plan(16, current_kwargs={"two_phase_state": "e"}, publications=["p1", "p2"])
    steps, _module = plan(16, current_kwargs={"two_phase_state": "e"}, publications=["p1", "p2"], copy_data=False)
    assert steps[0][0] == "refresh"


def test_plan_slot_options_disable_first_then_outside_a_transaction():
    steps, _module = plan(18, enabled=False, failover=True, two_phase=True, binary=True)
    assert steps == [
        ("disable", 'ALTER SUBSCRIPTION "sub1" DISABLE', False),
        ("wait_stopped", None, False),
        ("slot", 'ALTER SUBSCRIPTION "sub1" SET (failover = true)', True),
        ("main", 'ALTER SUBSCRIPTION "sub1" SET (binary = true, two_phase = true)', False),
    ]
    # two_phase true -> false alters the slot too
    steps, _module = plan(18, current_kwargs={"enabled": False, "two_phase_state": "e"}, two_phase=False)
    assert steps == [("slot", 'ALTER SUBSCRIPTION "sub1" SET (two_phase = false)', True)]


@pytest.mark.parametrize(
    ("major", "kwargs", "message"),
    [
        (17, {"two_phase": True, "enabled": False}, "two_phase: ALTER SUBSCRIPTION can change it from PostgreSQL 18"),
        (16, {"failover": True, "enabled": False}, "failover: ALTER SUBSCRIPTION can change it from PostgreSQL 17"),
    ],
)
def test_plan_unalterable(major, kwargs, message):
    with pytest.raises(Failed, match=message):
        plan(major, **kwargs)


@pytest.mark.parametrize(
    ("major", "kwargs", "altered"),
    [
        (17, {"failover": True}, [("slot", 'ALTER SUBSCRIPTION "sub1" SET (failover = true)', True)]),
        (18, {"two_phase": True}, [("main", 'ALTER SUBSCRIPTION "sub1" SET (two_phase = true)', False)]),
        (
            18,
            {"failover": True, "binary": True},
            [
                ("slot", 'ALTER SUBSCRIPTION "sub1" SET (failover = true)', True),
                ("main", 'ALTER SUBSCRIPTION "sub1" SET (binary = true)', False),
            ],
        ),
    ],
)
def test_plan_disabled_only_options_on_an_enabled_subscription(major, kwargs, altered):
    """Disabled, workers stopped, changed, enabled again: one call, and the module knows to say so."""
    steps, module = plan(major, **kwargs)
    assert steps == [
        ("disable", 'ALTER SUBSCRIPTION "sub1" DISABLE', False),
        ("wait_stopped", None, False),
        *altered,
        ("main", 'ALTER SUBSCRIPTION "sub1" ENABLE', False),
    ]
    assert module.temporarily_disabled is True
    # other options do not disable it; a subscription that stays disabled is not "temporarily" disabled
    _steps, module = plan(major, binary=True)
    assert module.temporarily_disabled is False
    steps, module = plan(major, enabled=False, **kwargs)
    assert module.temporarily_disabled is False
    assert steps[-1][1] != 'ALTER SUBSCRIPTION "sub1" ENABLE'


def test_plan_slot_name_rules():
    with pytest.raises(Failed, match="slot_name: NONE needs enabled: false"):
        plan(17, current_kwargs={"enabled": True}, slot_name="none", enabled=None)
    steps, _module = plan(17, slot_name="none", enabled=False)
    assert steps == [
        ("main", 'ALTER SUBSCRIPTION "sub1" DISABLE', False),
        ("main", 'ALTER SUBSCRIPTION "sub1" SET (slot_name = NONE)', False),
    ]
    with pytest.raises(Failed, match="cannot be changed in the same task"):
        plan(17, enabled=False, slot_name="other", failover=True)


def test_plan_skip_lsn():
    steps, _module = plan(15, skip_lsn="0/1a2b")
    assert steps == [("main", "ALTER SUBSCRIPTION \"sub1\" SKIP (lsn = '0/1A2B')", False)]
    steps, _module = plan(15, current_kwargs={"skip_lsn": "0/1A2B"}, skip_lsn="0/1a2b")
    assert steps == []


# ----------------------------------------------------------------------------------------------
# the module's options and the list form's items
# ----------------------------------------------------------------------------------------------


def _assert_documented(documented, spec):
    assert set(documented) == set(spec)
    for name, option in spec.items():
        assert documented[name]["type"] == option["type"], name
        assert documented[name].get("default") == option.get("default"), name
        assert documented[name].get("choices") == option.get("choices"), name
        assert documented[name].get("elements") == option.get("elements"), name
        assert bool(documented[name].get("required")) == bool(option.get("required")), name
        if "options" in option:
            _assert_documented(documented[name]["suboptions"], option["options"])


def test_argument_spec_and_subscriptions_suboptions_match_documentation():
    import yaml

    from ansible_collections.inventium.logical_replication.plugins.modules import subscription as sub_module

    doc = yaml.safe_load(sub_module.DOCUMENTATION)
    spec = sub_module.argument_spec()
    _assert_documented(doc["options"], spec)  # the connection options are a documentation fragment's
    assert (spec["subscriptions"]["type"], spec["subscriptions"]["elements"]) == ("list", "dict")
    assert spec["subscriptions"]["options"]["name"]["required"] is True
    assert spec["name"]["required"] is False
    yaml.safe_load(sub_module.EXAMPLES)
    returned = yaml.safe_load(sub_module.RETURN)
    assert set(returned["subscriptions"]["contains"]) == {
        "name",
        "changed",
        "temporarily_disabled",
        "subscription",
        "sync",
        "queries",
        "diff",
    }


def test_list_item_needs_one_connection_form():
    both = params(publisher={"host": "db"}, conninfo="host=db")
    with pytest.raises(mod.OptionError, match="publisher and conninfo are mutually exclusive"):
        mod.item_desired(both)
    assert mod.item_desired(params(name='"MySub"', conninfo="host=db")).name == "MySub"


def test_drop_timeout_is_the_items_publisher_connect_timeout():
    m = FakeModule(17)
    m.params = {"connect_timeout": 10, "publisher": None}  # the list form: no top-level publisher
    item = mod.SubscriptionModule(m, mod.Desired(params(publisher={"host": "db", "connect_timeout": 3})))
    assert item.drop_timeout() == 3
    assert mod.SubscriptionModule(m, mod.Desired(params())).drop_timeout() == 10


# ----------------------------------------------------------------------------------------------
# TCP keepalive keys of the publisher connection
# ----------------------------------------------------------------------------------------------

KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 5, "keepalives_count": 3,
              "tcp_user_timeout": 20000}  # fmt: skip
KEEPALIVES_STORED = "keepalives=1 keepalives_idle=5 keepalives_interval=5 keepalives_count=3 tcp_user_timeout=20000"


def test_keepalive_keys_are_part_of_the_connection():
    d = mod.Desired(params(publisher={"host": "db", "password": PASSWORD, **KEEPALIVES}))
    expected = {"host": "db", "password": PASSWORD, **{k: str(v) for k, v in KEEPALIVES.items()}}
    assert parse_conninfo(d.conn_text) == expected


def test_adding_keepalives_alters_the_connection_without_showing_the_password():
    steps, module = plan(17, publisher={"host": "db", "password": PASSWORD, **KEEPALIVES})
    assert [s[0] for s in steps] == ["main"]
    assert steps[0][1].startswith('ALTER SUBSCRIPTION "sub1" CONNECTION ')
    assert "keepalives_idle=5" in steps[0][1]
    # the password is a secret of the module (redacted from queries and messages); the shown form masks it
    assert PASSWORD in module.d.secrets()
    shown = mod.redact_conninfo(module.d.conn_text)
    assert "a'ss" not in shown
    assert "keepalives_idle=5" in shown


def test_stored_keepalives_in_another_order_are_no_change():
    stored = f"{KEEPALIVES_STORED} {row(17)['conninfo']}"  # host=db password='...' after the keepalives
    steps, _module = plan(
        17, current_kwargs={"conninfo": stored}, publisher={"host": "db", "password": PASSWORD, **KEEPALIVES}
    )
    assert steps == []


def test_removing_keepalives_alters_the_connection():
    stored = f"host=db {KEEPALIVES_STORED}"
    steps, _module = plan(17, current_kwargs={"conninfo": stored}, publisher={"host": "db"})
    assert [s[1] for s in steps] == ["ALTER SUBSCRIPTION \"sub1\" CONNECTION 'host=db'"]


@pytest.mark.parametrize("key", ["keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"])
def test_negative_keepalive_values_are_refused(key):
    with pytest.raises(mod.OptionError, match=f"publisher.{key}: must be 0 or more"):
        mod.Desired(params(publisher={"host": "db", key: -1}))
