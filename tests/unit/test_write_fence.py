"""The write fence's record and refusals (pure functions, no database)."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils._comment_record import (
    comment_to_keep,
    iso_utc,
    load_json_comment,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._write_fence import (
    FENCE_MARK,
    fence_holds,
    format_fence_record,
    make_fence_record,
    parse_fence_record,
    refusal,
    setting_value,
)

UTC = datetime.timezone.utc  # noqa: UP017 - the collection's code runs on Python < 3.11 too
AT = datetime.datetime(2026, 12, 4, 16, 0, 0, 123456, tzinfo=UTC)


def row(**overrides):
    base = {
        "name": "app",
        "superuser": False,
        "replication": False,
        "can_login": True,
        "is_session_user": False,
        "comment": None,
        "role_settings": None,
        "database_settings": [],
        "subscriptions": [],
    }
    return {**base, **overrides}


def test_record_round_trip_keeps_microseconds_and_the_comment():
    record = make_fence_record("read_only", AT, "off", True, "owned by: billing")
    text = format_fence_record(record)
    assert json.loads(text) == {
        "fence": FENCE_MARK,
        "method": "read_only",
        "fenced_at": "2026-12-04T16:00:00.123456Z",
        "previous": {"default_transaction_read_only": "off", "can_login": True},
        "previous_comment": "owned by: billing",
    }
    assert parse_fence_record(text) == record


@pytest.mark.parametrize(
    "comment",
    [
        None,
        "owned by: billing",
        '{"paused_by":"a","reason":"b","since":"2026-12-04T16:00:00Z"}',
        '{"fence":"other","method":"read_only","fenced_at":"2026-12-04T16:00:00Z","previous":{"can_login":true}}',
        f'{{"fence":"{FENCE_MARK}","method":"readonly","fenced_at":"2026-12-04T16:00:00Z","previous":{{"can_login":true}}}}',
        f'{{"fence":"{FENCE_MARK}","method":"nologin","fenced_at":"soon","previous":{{"can_login":true}}}}',
        f'{{"fence":"{FENCE_MARK}","method":"nologin","fenced_at":"2026-12-04T16:00:00Z","previous":{{}}}}',
    ],
)
def test_not_a_fence_record(comment):
    assert parse_fence_record(comment) is None


def test_comment_helpers():
    assert load_json_comment("[1]") is None
    assert load_json_comment('{"a": 1}') == {"a": 1}
    assert comment_to_keep("mine", None) == "mine"
    assert comment_to_keep("{...}", {"previous_comment": "mine"}) == "mine"
    assert comment_to_keep("", None) is None
    assert iso_utc(AT) == "2026-12-04T16:00:00Z"


def test_setting_value_and_holds():
    assert setting_value(["search_path=a", "default_transaction_read_only=off"]) == "off"
    assert setting_value(None) is None
    assert fence_holds("read_only", "on", True)
    assert fence_holds("read_only", "true", True)
    assert not fence_holds("read_only", "off", True)
    assert not fence_holds("read_only", None, True)
    assert fence_holds("nologin", None, False)
    assert not fence_holds("nologin", "on", True)


@pytest.mark.parametrize(
    ("overrides", "method", "expected"),
    [
        ({"superuser": True}, "read_only", "is a superuser"),
        ({"replication": True}, "nologin", "never fence the replication role"),
        ({"is_session_user": True}, "read_only", "the user this module connects as"),
        ({"subscriptions": ["sub1"]}, "read_only", "owns the subscription(s) sub1"),
        (
            {"database_settings": ["shop: default_transaction_read_only=off"]},
            "read_only",
            "database-specific default_transaction_read_only (shop: default_transaction_read_only=off)",
        ),
        (
            {"comment": format_fence_record(make_fence_record("nologin", AT, None, True))},
            "read_only",
            "already fenced with method nologin",
        ),
    ],
)
def test_refusals(overrides, method, expected):
    assert expected in refusal(row(**overrides), method)


def test_accepted_roles():
    assert refusal(None, "read_only", "Ghost") == 'role "Ghost" does not exist'
    assert refusal(row(), "read_only") is None
    # A database-specific setting that is on, or any with nologin, does not defeat the fence.
    assert refusal(row(database_settings=["shop: default_transaction_read_only=on"]), "read_only") is None
    assert refusal(row(database_settings=["shop: default_transaction_read_only=off"]), "nologin") is None
