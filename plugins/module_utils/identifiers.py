# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Parse, quote and compose PostgreSQL identifiers the way PostgreSQL itself does.

Users write object names as they would in SQL: ``books``, ``sales.orders``,
``"Sales Data"."Order Items"``, ``"LeadPub"``. Unquoted names fold to lower case
(ASCII letters only, exactly like PostgreSQL's scanner); quoted names keep their case,
``""`` inside quotes is one ``"``, and dots inside quotes are part of the name.

The parsed parts are plain strings; turn them into SQL with :func:`ident` /
:meth:`QualifiedName.identifier` (``psycopg.sql.Identifier``), never with string
formatting. :func:`quote_ident` renders a name for *display* (results, messages)
in a form that parses back to the same name.
"""

from __future__ import annotations

import re
from collections import namedtuple

from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import sql

MAX_IDENTIFIER_BYTES = 63
"""PostgreSQL truncates longer identifiers (NAMEDATALEN - 1); we refuse them instead."""

DEFAULT_SCHEMA = "public"

# Keywords that PostgreSQL's quote_ident() quotes (every category but "unreserved").
_QUOTED_KEYWORDS = frozenset(
    """
    all analyse analyze and any array as asc asymmetric both case cast check collate column constraint
    create current_catalog current_date current_role current_time current_timestamp current_user default
    deferrable desc distinct do else end except false fetch for foreign from grant group having in
    initially intersect into lateral leading limit localtime localtimestamp not null offset on only or
    order placing primary references returning select session_user some symmetric system_user table then
    to trailing true union unique user using variadic when where window with
    authorization binary collation concurrently cross current_schema freeze full ilike inner is isnull
    join left like natural notnull outer overlaps right similar tablesample verbose
    between bigint bit boolean char character coalesce dec decimal exists extract float greatest grouping
    inout int integer interval json json_array json_arrayagg json_exists json_object json_objectagg
    json_query json_scalar json_serialize json_table json_value least merge_action national nchar none
    normalize nullif numeric out overlay position precision real row setof smallint substring time
    timestamp treat trim values varchar xmlattributes xmlconcat xmlelement xmlexists xmlforest
    xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable
    """.split()
)
_SAFE_IDENT = re.compile(r"[a-z_][a-z0-9_]*\Z")


class IdentifierError(ValueError):
    """A user-supplied name is not a valid (qualified) PostgreSQL identifier."""


def _is_ident_start(char):
    return char == "_" or ("a" <= char <= "z") or ("A" <= char <= "Z") or ord(char) >= 0x80


def _is_ident_char(char):
    return _is_ident_start(char) or ("0" <= char <= "9") or char == "$"


def fold_case(name):
    """Lower-case ASCII letters only, as PostgreSQL does for unquoted identifiers (UTF-8 databases)."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in name)


def _check_length(name, text):
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise IdentifierError(
            f"identifier {name!r} in {text!r} is longer than {MAX_IDENTIFIER_BYTES} bytes; PostgreSQL would truncate it"
        )


def split_identifiers(text):
    """Split a dotted SQL name into its parts, unquoting and case-folding like PostgreSQL.

    ``'Sales."Order Items"'`` -> ``['sales', 'Order Items']``. White space around
    parts and dots is allowed. Raises :class:`IdentifierError` on empty input,
    empty quoted names (``""``), unterminated quotes, invalid characters and names
    longer than 63 bytes.
    """
    if not isinstance(text, str):
        raise IdentifierError(f"expected a name as a string, got {type(text).__name__}")
    parts = []
    i, n = 0, len(text)

    def skip_ws(pos):
        while pos < n and text[pos].isspace():
            pos += 1
        return pos

    i = skip_ws(i)
    if i == n:
        raise IdentifierError("empty name")
    while True:
        if text[i] == '"':
            j = i + 1
            buf = []
            while True:
                if j >= n:
                    raise IdentifierError(f"unterminated quoted identifier in {text!r}")
                if text[j] == '"':
                    if j + 1 < n and text[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            part = "".join(buf)
            if not part:
                raise IdentifierError(f"zero-length quoted identifier in {text!r}")
            i = j + 1
        else:
            if not _is_ident_start(text[i]):
                raise IdentifierError(f"unexpected character {text[i]!r} at position {i} in {text!r}")
            j = i + 1
            while j < n and _is_ident_char(text[j]):
                j += 1
            part = fold_case(text[i:j])
            i = j
        _check_length(part, text)
        parts.append(part)
        i = skip_ws(i)
        if i == n:
            return parts
        if text[i] != ".":
            raise IdentifierError(f"unexpected character {text[i]!r} at position {i} in {text!r}")
        i = skip_ws(i + 1)
        if i == n:
            raise IdentifierError(f"name {text!r} ends with a dot")


def parse_identifier(text):
    """Parse one (possibly quoted) identifier: ``'LeadPub'`` -> ``'leadpub'``, ``'"LeadPub"'`` -> ``'LeadPub'``."""
    parts = split_identifiers(text)
    if len(parts) != 1:
        raise IdentifierError(f"{text!r} must be a single name, not a qualified name")
    return parts[0]


class QualifiedName(namedtuple("QualifiedName", ["schema", "name"])):
    """A schema-qualified object name (both parts already unquoted/folded)."""

    __slots__ = ()

    def identifier(self):
        """Return the ``psycopg.sql.Identifier`` rendering ``"schema"."name"``."""
        return ident(self.schema, self.name)

    def __str__(self):
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


def parse_qualified_name(text, default_schema=DEFAULT_SCHEMA):
    """Parse ``name`` or ``schema.name`` (each part quoted or not) into a :class:`QualifiedName`.

    ``'books'`` -> ``('public', 'books')``; ``'"Sales Data"."Order Items"'`` ->
    ``('Sales Data', 'Order Items')``; ``'"a.b"'`` -> ``('public', 'a.b')``.
    """
    parts = split_identifiers(text)
    if len(parts) == 1:
        return QualifiedName(default_schema, parts[0])
    if len(parts) == 2:
        return QualifiedName(parts[0], parts[1])
    raise IdentifierError(f"{text!r} has too many dotted parts (expected name or schema.name)")


def quote_ident(name):
    """Render a name for display the way PostgreSQL's ``quote_ident()`` does (quotes only when needed)."""
    if _SAFE_IDENT.match(name) and name not in _QUOTED_KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def ident(*parts):
    """``psycopg.sql.Identifier`` for one name or a dotted path; every part is quoted exactly."""
    return sql.Identifier(*parts)


def literal(value):
    """``psycopg.sql.Literal`` for a value (strings become properly quoted SQL literals)."""
    return sql.Literal(value)


def unique_names(values, option, kind, parse, error, indexed=True):
    """Names parsed from the list option ``values`` in order; a name listed twice raises ``error``.

    ``parse(value, option_text)`` parses one element (``option_text``: ``option[index]``);
    ``kind`` names the object in the message, which starts with ``option[index]`` (``indexed``)
    or ``option``.
    """
    names = []
    for index, value in enumerate(values):
        element = f"{option}[{index}]"
        name = parse(value, element)
        if name in names:
            raise error(f"{element if indexed else option}: {kind} {quote_ident(name)} is listed more than once")
        names.append(name)
    return names
