"""Secret redaction (no database)."""

from __future__ import annotations

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import (
    MASK,
    redact,
    redact_data,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host=db password=s3cret user=app", f"host=db password={MASK} user=app"),
        ("host=db password = s3cret", f"host=db password = {MASK}"),
        ("host=db PASSWORD=s3cret", f"host=db PASSWORD={MASK}"),
        ("host=db password='s3 cret' user=app", f"host=db password='{MASK}' user=app"),
        (r"password='it\'s' user=app", f"password='{MASK}' user=app"),
        ("sslpassword=keypass host=x", f"sslpassword={MASK} host=x"),
        ("postgresql://app:s3cret@db:5432/app", f"postgresql://app:{MASK}@db:5432/app"),
        ("postgres://app:s3cret@db/app?sslmode=require", f"postgres://app:{MASK}@db/app?sslmode=require"),
        ("postgresql://db/app?user=app&password=s3cret&x=1", f"postgresql://db/app?user=app&password={MASK}&x=1"),
        (
            "CREATE SUBSCRIPTION s CONNECTION 'host=db password=s3cret dbname=app' PUBLICATION p",
            f"CREATE SUBSCRIPTION s CONNECTION 'host=db password={MASK} dbname=app' PUBLICATION p",
        ),
        (
            "CONNECTION 'host=db password=''s3 cret'' dbname=app'",
            f"CONNECTION 'host=db password=''{MASK}'' dbname=app'",
        ),
        ("CONNECTION 'host=db password=s3cret'", f"CONNECTION 'host=db password={MASK}'"),
        ("no secrets here", "no secrets here"),
        ('password authentication failed for user "app"', 'password authentication failed for user "app"'),
        ("mypassword=x", "mypassword=x"),
    ],
)
def test_redact_patterns(text, expected):
    assert redact(text) == expected


def test_redact_known_secrets_in_all_quoted_forms():
    secret = "pa'ss\\word"
    sql_quoted = secret.replace("'", "''")
    conninfo = secret.replace("\\", "\\\\").replace("'", "\\'")
    for form in (secret, sql_quoted, conninfo, conninfo.replace("'", "''")):
        text = f"error near {form} in statement"
        assert secret not in redact(text, [secret])
        assert redact(text, [secret]) == f"error near {MASK} in statement"


def test_redact_known_secret_anywhere():
    assert redact("FATAL: role hunter2 x", ["hunter2"]) == f"FATAL: role {MASK} x"
    assert redact("abc", [None, ""]) == "abc"


def test_redact_passthrough_and_data():
    assert redact(None) is None
    assert redact(5) == 5
    data = {"queries": ["x password=a"], "k": ("pw1",), "n": 1, "pw1": {"nested": "pw1 here"}}
    assert redact_data(data, ["pw1"]) == {
        "queries": [f"x password={MASK}"],
        "k": (MASK,),
        "n": 1,
        MASK: {"nested": f"{MASK} here"},
    }
