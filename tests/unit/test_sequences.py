"""The sequences planner, the native-method gate and the sequence-gap checks (no database)."""

from __future__ import annotations

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _sequences, _versions
from ansible_collections.inventium.logical_replication.plugins.module_utils._sequences import (
    AHEAD,
    IN_SYNC,
    SET,
    SET_BACKWARDS,
    UNUSED,
    SequenceError,
    check_sequence_gaps,
    gaps_from_states,
    method_problem,
    parse_sequence_names,
    plan_sequences,
    publisher_params,
    publisher_secrets,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import QualifiedName

SEQ = QualifiedName("public", "books_id_seq")
OTHER = QualifiedName("Sales", "Order Ids")


def state(last_value, increment_by=1, start_value=None, min_value=None, max_value=None, **extra):
    up = increment_by > 0
    return {
        "exists": True,
        "kind": "S",
        "readable": True,
        "last_value": last_value,
        "start_value": start_value if start_value is not None else (1 if up else -1),
        "increment_by": increment_by,
        "min_value": min_value if min_value is not None else (1 if up else -(2**63)),
        "max_value": max_value if max_value is not None else (2**63 - 1 if up else -1),
        "cycle": False,
        "data_type": "bigint",
        **extra,
    }


def one(pub, sub, **kwargs):
    plan = plan_sequences([SEQ], {SEQ: pub}, {SEQ: sub}, **kwargs)
    assert len(plan) == 1
    return plan[0]


# ------------------------------------------------------------------------------------------ planner


def test_behind_is_set_to_the_publisher_value():
    item = one(state(1042), state(5))
    assert item == {
        "name": "public.books_id_seq",
        "publisher_value": 1042,
        "subscriber_before": 5,
        "subscriber_after": 1042,
        "action": SET,
        "value": 1042,
    }


def test_never_used_subscriber_is_set():
    item = one(state(7), state(None))
    assert item["action"] == SET
    assert item["subscriber_before"] is None
    assert item["value"] == 7


def test_equal_is_no_change():
    item = one(state(1042), state(1042))
    assert item["action"] == IN_SYNC
    assert "value" not in item
    assert item["subscriber_after"] == 1042


def test_margin_is_added():
    item = one(state(1042), state(1042), margin=1000)
    assert item["action"] == SET
    assert item["value"] == 2042


def test_margin_applied_once_is_idempotent():
    item = one(state(1042), state(2042), margin=1000)
    assert item["action"] == IN_SYNC


def test_ahead_is_left_alone_without_allow_backwards():
    item = one(state(10), state(500))
    assert item["action"] == AHEAD
    assert item["subscriber_after"] == 500
    assert "value" not in item


def test_ahead_moves_back_with_allow_backwards():
    item = one(state(10), state(500), allow_backwards=True)
    assert item["action"] == SET_BACKWARDS
    assert item["value"] == 10
    assert item["subscriber_after"] == 10


def test_smaller_margin_after_a_larger_one_is_ahead():
    item = one(state(1050), state(2042), margin=10)
    assert item["action"] == AHEAD


def test_unused_on_the_publisher_copies_nothing():
    item = one(state(None), state(None))
    assert item["action"] == UNUSED
    item = one(state(None), state(99))
    assert item["action"] == UNUSED
    assert item["subscriber_after"] == 99


def test_unused_subscriber_whose_next_value_follows_is_in_sync():
    # Never used, starting at 11: its next value is 11, as after setval(10, true).
    item = one(state(10), state(None, start_value=11))
    assert item["action"] == IN_SYNC


def test_unused_subscriber_starting_beyond_is_ahead():
    item = one(state(10), state(None, start_value=1000))
    assert item["action"] == AHEAD


def test_descending_sequence_compares_downwards():
    item = one(state(-50, increment_by=-1), state(-10, increment_by=-1), margin=5)
    assert item["action"] == SET
    assert item["value"] == -55
    item = one(state(-50, increment_by=-1), state(-80, increment_by=-1))
    assert item["action"] == AHEAD


def test_direction_mismatch_is_an_error():
    with pytest.raises(SequenceError, match="counts up on one side and down"):
        one(state(5), state(-5, increment_by=-1))


def test_value_beyond_the_subscriber_range_is_an_error():
    with pytest.raises(SequenceError, match=r"2042, outside the subscriber's range 1 \.\. 2000"):
        one(state(1042), state(5, max_value=2000), margin=1000)


def test_missing_sequences_are_all_named_and_nothing_is_planned():
    missing = {"exists": False, "kind": None}
    with pytest.raises(SequenceError) as info:
        plan_sequences([SEQ, OTHER], {SEQ: state(5), OTHER: state(5)}, {SEQ: missing, OTHER: missing})
    message = str(info.value)
    assert "sequence public.books_id_seq does not exist on the subscriber" in message
    assert 'sequence "Sales"."Order Ids" does not exist on the subscriber' in message


def test_not_a_sequence_and_unreadable_are_errors():
    with pytest.raises(SequenceError, match=r"is not a sequence \(relkind r\) on the publisher"):
        one({"exists": False, "kind": "r"}, state(5))
    with pytest.raises(SequenceError, match="cannot be read on the publisher: the role needs SELECT or USAGE"):
        one(state(None, readable=False), state(5))


@pytest.mark.parametrize("margin", [-1, True, 1.5, "10"])
def test_bad_margin(margin):
    with pytest.raises(SequenceError, match="margin must be a whole number"):
        one(state(1), state(1), margin=margin)


def test_diff_and_changes():
    plan = plan_sequences(
        [SEQ, OTHER], {SEQ: state(10), OTHER: state(3)}, {SEQ: state(4), OTHER: state(3)}, allow_backwards=False
    )
    assert [item["name"] for item in _sequences.changes(plan)] == ["public.books_id_seq"]
    before, after = _sequences.plan_diff(plan)
    assert before == {"public.books_id_seq": 4, '"Sales"."Order Ids"': 3}
    assert after == {"public.books_id_seq": 10, '"Sales"."Order Ids"': 3}


# ------------------------------------------------------------------------------------------ names and options


def test_sequence_names_parse_like_postgresql():
    names = parse_sequence_names(["Books_Id_Seq", 'sales."Order Ids"'])
    assert names == [QualifiedName("public", "books_id_seq"), QualifiedName("sales", "Order Ids")]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["a.b.c"], r"sequences\[0\]: 'a.b.c' has too many dotted parts"),
        (["ok", '"unterminated'], r"sequences\[1\]: unterminated quoted identifier"),
        (["x", "public.X"], r"sequences\[1\]: sequence public.x is listed more than once"),
        ([""], r"sequences\[0\]: empty name"),
    ],
)
def test_bad_sequence_names(values, message):
    with pytest.raises(SequenceError, match=message):
        parse_sequence_names(values)


def test_publisher_params_use_the_collections_session_name():
    params = publisher_params({"host": "h", "port": 5432, "password": "pw", "sslkey": None, "application_name": "x"})
    assert params == {
        "host": "h",
        "port": 5432,
        "password": "pw",
        "application_name": "ansible-inventium.logical_replication",
    }
    params = publisher_params(conninfo="host=h password='a b'")
    assert params["password"] == "a b"
    with pytest.raises(SequenceError, match="conninfo: unterminated quoted value"):
        publisher_params(conninfo="host=h password='a b")


def test_publisher_secrets():
    assert publisher_secrets({"password": "pw"}) == ["pw"]
    assert publisher_secrets(conninfo="host=h password=s3") == ["host=h password=s3", "s3"]


# ------------------------------------------------------------------------------------------ version gate


def test_native_gate_is_the_version_fact():
    assert _versions.NATIVE_SEQUENCES_MAJOR == 19


@pytest.mark.parametrize("major", [13, 15, 17, 18])
def test_native_refused_before_19(major):
    problem = method_problem("native", major)
    assert problem == (
        f"option method=native requires PostgreSQL >= 19 on the subscriber (server is {major}): use method=setval"
    )


def test_native_allowed_from_19():
    assert method_problem("native", 19) is None
    assert method_problem("native", 20) is None


def test_native_refuses_margin_and_sequences():
    assert "margin cannot be used" in method_problem("native", 19, margin=5)
    assert "sequences cannot be used" in method_problem("native", 19, sequences=[SEQ])


@pytest.mark.parametrize("major", [13, 15, 19])
def test_setval_works_everywhere(major):
    assert method_problem("setval", major, margin=5, sequences=[SEQ]) is None


def test_unknown_method():
    assert "method must be one of setval, native" in method_problem("copy", 17)


# ------------------------------------------------------------------------------------------ gaps and checks


def test_gaps_and_findings():
    unused = QualifiedName("public", "unused_seq")
    gone = QualifiedName("public", "gone_seq")
    secret = QualifiedName("public", "secret_seq")
    names = [SEQ, OTHER, unused, gone, secret]
    publisher = {
        SEQ: state(100),
        OTHER: state(7),
        unused: state(None),
        gone: state(3),
        secret: state(None, readable=False),
    }
    subscriber = {
        SEQ: state(40),
        OTHER: state(7),
        unused: state(None),
        gone: {"exists": False, "kind": None},
        secret: state(1),
    }
    gaps = gaps_from_states(names, publisher, subscriber)
    assert gaps == [
        {"name": "public.books_id_seq", "publisher_value": 100, "subscriber_value": 40, "gap": 60, "state": "ok"},
        {"name": '"Sales"."Order Ids"', "publisher_value": 7, "subscriber_value": 7, "gap": 0, "state": "ok"},
        {"name": "public.unused_seq", "publisher_value": None, "subscriber_value": None, "gap": 0, "state": "unused"},
        {"name": "public.gone_seq", "publisher_value": 3, "subscriber_value": None, "gap": None, "state": "missing"},
        {
            "name": "public.secret_seq",
            "publisher_value": None,
            "subscriber_value": 1,
            "gap": None,
            "state": "unreadable",
        },
    ]
    findings = check_sequence_gaps(gaps)
    assert [(f["severity"], f["code"]) for f in findings] == [
        ("error", "sequence_missing"),
        ("warning", "sequence_unreadable"),
        ("info", "sequence_gap"),
    ]
    assert findings[0]["message"] == "1 sequence(s) of the published tables missing on the subscriber: public.gone_seq"
    assert findings[2]["message"] == "1 subscriber sequence(s) behind the publisher: public.books_id_seq (60 behind)"
    assert "playbooks/sync_sequences.yml" in findings[2]["hint"]
    assert set(findings[0]) == {"severity", "code", "message", "hint"}


def test_gap_of_a_never_used_subscriber_counts_from_its_start():
    gaps = gaps_from_states([SEQ], {SEQ: state(10)}, {SEQ: state(None)})
    assert gaps[0]["gap"] == 10


def test_no_findings_when_in_sync_or_ahead():
    gaps = gaps_from_states([SEQ, OTHER], {SEQ: state(10), OTHER: state(5)}, {SEQ: state(10), OTHER: state(50)})
    assert [g["gap"] for g in gaps] == [0, -45]
    assert check_sequence_gaps(gaps) == []


def test_long_listing_is_cut():
    gaps = [
        {"name": f"public.s{i}", "publisher_value": 2, "subscriber_value": 1, "gap": 1, "state": "ok"}
        for i in range(12)
    ]
    (found,) = check_sequence_gaps(gaps)
    assert found["message"].endswith("public.s9 (1 behind) and 2 more")
