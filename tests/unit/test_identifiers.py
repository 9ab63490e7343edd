"""Qualified-name parsing, display quoting and SQL composition (no database)."""

from __future__ import annotations

import pytest
from psycopg import sql

from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (
    IdentifierError,
    QualifiedName,
    fold_case,
    ident,
    literal,
    parse_identifier,
    parse_qualified_name,
    quote_ident,
    split_identifiers,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("books", ("public", "books")),
        ("Books", ("public", "books")),
        ("BOOKS", ("public", "books")),
        ("sales.orders", ("sales", "orders")),
        ("Sales.Orders", ("sales", "orders")),
        ('"Sales Data"."Order Items"', ("Sales Data", "Order Items")),
        ('"LeadPub"', ("public", "LeadPub")),
        ('"a.b"', ("public", "a.b")),
        ('"a.b"."c.d"', ("a.b", "c.d")),
        ('"say ""hi"""', ("public", 'say "hi"')),
        ('sales."Order"', ("sales", "Order")),
        (" sales . orders ", ("sales", "orders")),
        ("t$1", ("public", "t$1")),
        ("_x", ("public", "_x")),
        ("Ÿber", ("public", "Ÿber")),  # only ASCII letters fold, like PostgreSQL in UTF-8
        ("ÄBC", ("public", "Äbc")),
    ],
)
def test_parse_qualified_name(text, expected):
    assert parse_qualified_name(text) == expected


def test_default_schema():
    assert parse_qualified_name("t", default_schema="app") == ("app", "t")


@pytest.mark.parametrize(
    "text",
    ["", "  ", '""', '"unterminated', "a.", ".a", "a..b", "a.b.c", "1abc", "$x", "a b", "a;drop", "a-b", 'a"b"'],
)
def test_parse_qualified_name_rejects(text):
    with pytest.raises(IdentifierError):
        parse_qualified_name(text)


def test_too_long_identifiers_are_refused_not_truncated():
    assert parse_identifier("a" * 63) == "a" * 63
    with pytest.raises(IdentifierError, match="longer than 63 bytes"):
        parse_identifier("a" * 64)
    with pytest.raises(IdentifierError, match="longer than 63 bytes"):
        parse_identifier('"' + "é" * 32 + '"')  # 64 bytes in UTF-8


def test_parse_identifier():
    assert parse_identifier("LeadPub") == "leadpub"
    assert parse_identifier('"LeadPub"') == "LeadPub"
    assert parse_identifier('"a.b"') == "a.b"
    with pytest.raises(IdentifierError, match="single name"):
        parse_identifier("a.b")
    with pytest.raises(IdentifierError):
        parse_identifier(None)


def test_split_identifiers():
    assert split_identifiers('a."B".c') == ["a", "B", "c"]


def test_fold_case():
    assert fold_case("MixedCase_ÄÖ") == "mixedcase_ÄÖ"


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("books", "books"),
        ("Books", '"Books"'),
        ("order items", '"order items"'),
        ('say "hi"', '"say ""hi"""'),
        ("user", '"user"'),
        ("table", '"table"'),
        ("select", '"select"'),
        ("name", "name"),  # unreserved keyword
        ("t$1", '"t$1"'),
        ("1a", '"1a"'),
        ("a.b", '"a.b"'),
    ],
)
def test_quote_ident(name, shown):
    assert quote_ident(name) == shown
    assert parse_identifier(shown) == name


def test_qualified_name_display_round_trips():
    qn = QualifiedName("Sales Data", "Order Items")
    assert str(qn) == '"Sales Data"."Order Items"'
    assert parse_qualified_name(str(qn)) == qn
    assert str(QualifiedName("public", "books")) == "public.books"


def test_composition_quotes_exactly():
    qn = parse_qualified_name('"Sales Data"."Order ""X"""')
    assert qn.identifier().as_string(None) == '"Sales Data"."Order ""X"""'
    assert ident("LeadPub").as_string(None) == '"LeadPub"'
    assert literal("it's").as_string(None) == "'it''s'"
    statement = sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(ident("p"), qn.identifier())
    assert statement.as_string(None) == 'ALTER PUBLICATION "p" ADD TABLE "Sales Data"."Order ""X"""'
