"""libpq connection strings: quoting, parsing (checked against libpq itself), comparing, redaction."""

from __future__ import annotations

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import (
    ConninfoError,
    conninfo_diff,
    conninfo_secrets,
    make_conninfo,
    normalize_conninfo,
    parse_conninfo,
    quote_value,
    redact_conninfo,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import MASK, redact

psycopg = pytest.importorskip("psycopg")
from psycopg import sql  # noqa: E402

SENTINEL = 'S3ntinel pa\'ss\\wo=rd "x" '

NASTY_VALUES = [
    "plain",
    "",
    " ",
    "with space",
    "it's",
    "back\\slash",
    "ends with backslash\\",
    "'",
    "\\'",
    "a=b",
    "=",
    "tab\there",
    "new\nline",
    "ünïcødé ✓",
    "''",
    "%41%",
    SENTINEL,
]

# Key/value strings and URIs parsed by libpq (PQconninfoParse via psycopg) and by us.
LIBPQ_CORPUS = [
    "",
    "   ",
    "host=db port=5432 dbname=app",
    "host = db   port=  5432\tdbname =app",
    "password='a b c' user=x",
    r"password='it\'s' user=x",
    r"password=it\'s user=x",
    r"password=back\\slash",
    r"password='back\\slash\\' host=x",
    "password=a=b=c host=x",
    "host='' dbname=x",
    "password='x'host=y",
    "host=a host=b",
    "application_name='my app' options='-c search_path=s'",
    "postgresql://",
    "postgres://db",
    "postgresql://user@db",
    "postgresql://user:secret@db:5433/app",
    "postgresql://user:pa:ss@db/app",
    "postgresql://us%40er:p%20w%27d@db/app",
    "postgresql://:pw@db/app",
    "postgresql://user:@db/app",
    "postgresql://db1:5432,db2:5433/app?target_session_attrs=read-write",
    "postgresql://[::1]:5432/app",
    "postgresql://[2001:db8::1],db2/app",
    "postgresql:///app?host=/var/run/postgresql",
    "postgresql://db/app?ssl=true",
    "postgresql://db/app?ssl=true&sslmode=disable",
    "postgresql://db/app?application_name=a%20b&connect_timeout=5&",
    "postgresql://db/?dbname=x",
    "postgresql://db?port=1",
    "postgresql://db:/app",
    "postgresql://%2Fvar%2Frun%2Fpostgresql/app",
    "postgresql://u@h/d%C3%BCb",
]

INVALID = [
    "host",
    "host=db port",
    "=x",
    "host='db",
    r"password='x\'",
    "postgresql://[::1/app",
    "postgresql://[]/app",
    "postgresql://[::1]x/app",
    "postgresql://db/app?sslmode",
    "postgresql://db/app?a=b=c",
    "postgresql://db/app?a=1&&b=2",
    "postgresql://db/app?=x",
    "postgresql://db/a%zzpp",
    "postgresql://db/a%0",
    "postgresql://db/a%00",
]


@pytest.mark.parametrize("value", NASTY_VALUES)
def test_quote_value_round_trips_through_libpq(value):
    text = make_conninfo({"host": "db", "password": value, "application_name": "x"})
    assert psycopg.conninfo.conninfo_to_dict(text)["password"] == value or value == ""
    assert parse_conninfo(text)["password"] == value


def test_quote_value_forms():
    assert quote_value("db.example.com") == "db.example.com"
    assert quote_value(5432) == "5432"
    assert quote_value("") == "''"
    assert quote_value("a b") == "'a b'"
    assert quote_value("it's") == r"'it\'s'"
    assert quote_value("a\\b") == r"'a\\b'"
    assert quote_value("a=b") == "'a=b'"


def test_make_conninfo_order_none_and_bool():
    params = {"host": "h", "port": 5432, "user": None, "keepalives": True}
    assert make_conninfo(params) == "host=h port=5432 keepalives=1"
    with pytest.raises(ConninfoError):
        make_conninfo({"bad key": "x"})


@pytest.mark.parametrize("text", LIBPQ_CORPUS)
def test_parse_matches_libpq(text):
    assert parse_conninfo(text) == psycopg.conninfo.conninfo_to_dict(text)


@pytest.mark.parametrize("text", INVALID)
def test_invalid_strings_fail_like_libpq(text):
    with pytest.raises(psycopg.ProgrammingError):
        psycopg.conninfo.conninfo_to_dict(text)
    with pytest.raises(ConninfoError):
        parse_conninfo(text)


@pytest.mark.parametrize(
    "text",
    [
        "host=db password=a b c",
        "host=db password='unterminated secret",
        "postgresql://u:s%zzecret@db/app",
        "postgresql://u:secret@[db/app",
    ],
)
def test_errors_never_contain_values(text):
    with pytest.raises(ConninfoError) as info:
        parse_conninfo(text)
    message = str(info.value)
    for fragment in ("secret", "b c", "db", "s%zz"):
        assert fragment not in message


def test_parse_rejects_non_strings():
    with pytest.raises(ConninfoError):
        parse_conninfo(None)


def test_semantic_comparison():
    a = parse_conninfo("host=db port=5432 dbname=app password='x y'")
    b = parse_conninfo("postgresql://db:5432/app?password=x%20y")
    assert conninfo_diff(a, b) == []
    assert conninfo_diff(a, {"host": "db", "port": 5432, "dbname": "app", "password": "x y", "sslmode": None}) == []
    assert conninfo_diff(a, {"host": "db", "port": "5433", "dbname": "app", "password": "x y"}) == ["port"]
    assert conninfo_diff(a, {"host": "db", "port": "5432", "dbname": "app"}) == ["password"]
    assert conninfo_diff({"sslmode": ""}, {}) == []
    assert normalize_conninfo({"port": 1, "x": None, "y": "", "z": False}) == {"port": "1", "z": "0"}


def test_secrets_and_redaction():
    params = {"host": "db", "password": SENTINEL, "sslpassword": "key pass", "user": "u"}
    assert sorted(conninfo_secrets(params)) == sorted([SENTINEL, "key pass"])
    text = make_conninfo(params)
    shown = redact_conninfo(text)
    assert shown == f"host=db password={MASK} sslpassword={MASK} user=u"
    assert redact_conninfo(params) == shown
    assert redact_conninfo("postgresql://u:secret@db/app") == f"user=u password={MASK} host=db dbname=app"
    # unparsable: falls back to pattern redaction
    assert "secret" not in redact_conninfo("host=db password=secret port")
    assert redact_conninfo(None) is None


@pytest.mark.parametrize("secret", [SENTINEL, "it's", "a\\b", "x'y\\z'", "\\", "'"])
def test_known_secret_redacted_from_sql_literal(secret):
    """The conninfo as psycopg renders it in CREATE SUBSCRIPTION (an E'' literal when it has backslashes)."""
    conninfo = make_conninfo({"host": "db", "password": secret, "dbname": "app"})
    rendered = sql.SQL("CREATE SUBSCRIPTION s CONNECTION {} PUBLICATION p").format(sql.Literal(conninfo))
    text = rendered.as_string(None)
    redacted = redact(text, [secret, conninfo])
    assert MASK in redacted
    for fragment in {secret, secret.strip(), "pa", "wo=rd"} - {"", "\\", "'"}:
        assert fragment not in redacted
    # the password part itself is fully gone, with the surrounding structure intact
    assert "host=db" in redacted or MASK in redacted
