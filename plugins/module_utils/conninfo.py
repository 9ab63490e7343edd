# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""libpq connection strings: build, parse, compare and redact them (pure Python).

A subscription stores the publisher's connection string (``pg_subscription.subconninfo``)
exactly as it was given. To stay idempotent the modules compare connection strings by
meaning, not by text: both sides are parsed with libpq's own rules into key/value dicts.

* :func:`make_conninfo` renders a dict as a key/value string, quoting values the way libpq
  reads them back (``password='it\\'s a secret'``);
* :func:`parse_conninfo` parses key/value strings and ``postgresql://`` URIs like
  ``PQconninfoParse`` does (last value of a repeated key wins, URI parts are percent-decoded,
  ``ssl=true`` becomes ``sslmode=require``). Its errors name positions, never values, so a
  malformed string cannot leak (part of) a password into a message;
* :func:`conninfo_diff` lists the keys whose values differ;
* :func:`redact_conninfo` renders a string or dict with every secret masked.

Keywords are not checked against libpq's list (it grows with each libpq version); the
server validates them when the string is used.
"""

from __future__ import annotations

import re

from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import MASK, redact

SECRET_KEYS = ("password", "sslpassword")
"""Keywords whose values are secrets."""

URI_PREFIXES = ("postgresql://", "postgres://")

# C isspace() in the "C" locale, which libpq uses.
_SPACE = " \t\n\v\f\r"
_BARE_VALUE = re.compile(r"[^\s'\\=]+\Z")
_HEX = "0123456789abcdefABCDEF"


class ConninfoError(ValueError):
    """The text is not a valid libpq connection string; ``str()`` never contains its values."""


# ----------------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------------


def quote_value(value):
    """Quote one value for a key/value connection string.

    Plain words stay bare (``5432``, ``db.example.com``); empty values and values with white
    space, quotes, backslashes or ``=`` are single-quoted with ``\\`` before ``'`` and ``\\``.
    """
    text = str(value)
    if _BARE_VALUE.match(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_conninfo(params):
    """Render ``params`` (a dict, order kept) as ``key=value`` pairs; ``None`` values are left out.

    Booleans become ``1``/``0``; other values are converted with ``str()``. Keywords must be
    non-empty words (letters, digits and ``_``).
    """
    parts = []
    for key, value in params.items():
        if value is None:
            continue
        if not re.match(r"[A-Za-z_][A-Za-z0-9_]*\Z", str(key)):
            raise ConninfoError(f"invalid connection keyword {key!r}")
        if isinstance(value, bool):
            value = "1" if value else "0"
        parts.append(f"{key}={quote_value(value)}")
    return " ".join(parts)


# ----------------------------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------------------------


def is_uri(text):
    """True when ``text`` is a ``postgresql://`` / ``postgres://`` URI (libpq's test)."""
    return isinstance(text, str) and text.startswith(URI_PREFIXES)


def parse_conninfo(text):
    """Parse a key/value connection string or a URI into a dict of keyword -> value (strings).

    Follows libpq (``conninfo_parse`` and ``conninfo_uri_parse_options`` in ``fe-connect.c``).
    Raises :class:`ConninfoError` (without any value in its message) on invalid input.
    """
    if not isinstance(text, str):
        raise ConninfoError(f"expected a connection string, got {type(text).__name__}")
    if is_uri(text):
        return _parse_uri(text)
    return _parse_keyword_value(text)


def _parse_keyword_value(text):
    result = {}
    i, n = 0, len(text)
    while i < n:
        if text[i] in _SPACE:
            i += 1
            continue
        start = i
        while i < n and text[i] != "=" and text[i] not in _SPACE:
            i += 1
        key = text[start:i]
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n or text[i] != "=":
            raise ConninfoError(f'missing "=" after the keyword at position {start + 1} of the connection string')
        if not key:
            raise ConninfoError(f"empty keyword before the '=' at position {i + 1} of the connection string")
        i += 1
        while i < n and text[i] in _SPACE:
            i += 1
        value = []
        if i < n and text[i] == "'":
            quote_at = i
            i += 1
            while True:
                if i >= n:
                    raise ConninfoError(
                        f"unterminated quoted value (opened at position {quote_at + 1}) in the connection string"
                    )
                char = text[i]
                if char == "\\":
                    i += 1
                    if i < n:
                        value.append(text[i])
                        i += 1
                    continue
                if char == "'":
                    i += 1
                    break
                value.append(char)
                i += 1
        else:
            while i < n:
                char = text[i]
                if char in _SPACE:
                    i += 1
                    break
                if char == "\\":
                    i += 1
                    if i < n:
                        value.append(text[i])
                        i += 1
                else:
                    value.append(char)
                    i += 1
        result[key] = "".join(value)
    return result


def _scan_until(text, pos, stops):
    """``(text[pos:end], end)``: the run of ``text`` from ``pos`` up to the first character of ``stops``."""
    end = pos
    while end < len(text) and text[end] not in stops:
        end += 1
    return text[pos:end], end


def _uri_decode(text, what):
    """Percent-decode like libpq (bytes, ``%00`` forbidden, no ``+`` -> space)."""
    if "%" not in text:
        return text
    raw = bytearray()
    data = text.encode("utf-8")
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte != 0x25:  # '%'
            raw.append(byte)
            i += 1
            continue
        digits = data[i + 1 : i + 3].decode("ascii", "replace")
        if len(digits) != 2 or digits[0] not in _HEX or digits[1] not in _HEX:
            raise ConninfoError(f"invalid percent-encoded token in the {what} of the connection URI")
        value = int(digits, 16)
        if value == 0:
            raise ConninfoError(f"forbidden value %00 in the {what} of the connection URI")
        raw.append(value)
        i += 3
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _parse_uri(text):
    result = {}
    prefix = next(p for p in URI_PREFIXES if text.startswith(p))
    rest = text[len(prefix) :]
    pos = 0
    n = len(rest)

    # user[:password]@ - only when an '@' comes before the first '/'
    look = pos
    while look < n and rest[look] not in "@/":
        look += 1
    if look < n and rest[look] == "@":
        userinfo = rest[pos:look]
        user, sep, password = userinfo.partition(":")
        if user:
            result["user"] = _uri_decode(user, "user name")
        if sep and password:
            result["password"] = _uri_decode(password, "password")
        pos = look + 1

    hosts, ports = [], []
    terminator = ""
    while True:
        if pos < n and rest[pos] == "[":
            start = pos + 1
            end = rest.find("]", start)
            if end < 0:
                raise ConninfoError('missing "]" after an IPv6 host address in the connection URI')
            if end == start:
                raise ConninfoError("empty IPv6 host address in the connection URI")
            host = rest[start:end]
            pos = end + 1
            if pos < n and rest[pos] not in ":/?,":
                raise ConninfoError(
                    f"unexpected character at position {len(prefix) + pos + 1} of the connection URI "
                    '(expected ":" or "/" after an IPv6 address)'
                )
        else:
            host, pos = _scan_until(rest, pos, ":/?,")
        terminator = rest[pos] if pos < n else ""
        hosts.append(host)
        port = ""
        if terminator == ":":
            port, pos = _scan_until(rest, pos + 1, "/?,")
            terminator = rest[pos] if pos < n else ""
        ports.append(port)
        if terminator != ",":
            break
        pos += 1

    host_text = ",".join(hosts)
    port_text = ",".join(ports)
    if host_text:
        result["host"] = _uri_decode(host_text, "host")
    if port_text:
        result["port"] = _uri_decode(port_text, "port")

    if terminator and terminator != "?":
        pos += 1  # past '/'
        start = pos
        while pos < n and rest[pos] != "?":
            pos += 1
        dbname = rest[start:pos]
        terminator = rest[pos] if pos < n else ""
        if dbname:
            result["dbname"] = _uri_decode(dbname, "database name")

    if terminator:
        params = rest[pos + 1 :]  # past '?'
        index = 0
        start = 0
        while start < len(params):
            amp = params.find("&", start)
            end = len(params) if amp < 0 else amp
            item = params[start:end]
            start = end + 1 if amp >= 0 else len(params)
            index += 1
            if "=" not in item:
                raise ConninfoError(f'missing "=" in query parameter {index} of the connection URI')
            key, _sep, value = item.partition("=")
            if "=" in value:
                raise ConninfoError(f'extra "=" in query parameter {index} of the connection URI')
            key = _uri_decode(key, "query parameters")
            value = _uri_decode(value, "query parameters")
            if key == "ssl" and value == "true":
                key, value = "sslmode", "require"
            if not key:
                raise ConninfoError(f"empty keyword in query parameter {index} of the connection URI")
            result[key] = value
    return result


# ----------------------------------------------------------------------------------------------
# comparing and redacting
# ----------------------------------------------------------------------------------------------


def normalize_conninfo(params):
    """Keyword -> value (strings) without empty values: libpq treats an empty value as not set."""
    result = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "1" if value else "0"
        value = str(value)
        if value != "":
            result[str(key)] = value
    return result


def conninfo_diff(current, desired):
    """Sorted keywords whose values differ between two connection dicts (see :func:`normalize_conninfo`)."""
    a = normalize_conninfo(current)
    b = normalize_conninfo(desired)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def conninfo_secrets(params):
    """The secret values (passwords) of a connection dict."""
    return [str(v) for k, v in (params or {}).items() if k in SECRET_KEYS and v not in (None, "")]


def mask_secrets(params):
    """Copy of a connection dict with every secret value replaced by the mask."""
    return {k: (MASK if k in SECRET_KEYS and v not in (None, "") else v) for k, v in (params or {}).items()}


def redact_conninfo(value):
    """A connection string (or dict) for display: key/value form with every secret masked.

    A string that cannot be parsed is returned through :func:`~.redaction.redact` instead.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        params = value
    else:
        try:
            params = parse_conninfo(value)
        except ConninfoError:
            return redact(value)
    try:
        return make_conninfo(mask_secrets(params))
    except ConninfoError:
        return redact(str(value))


# ----------------------------------------------------------------------------------------------
# the publisher option of the modules
# ----------------------------------------------------------------------------------------------


def publisher_option_spec():
    """Argument spec of a module's ``publisher`` option: a publisher connection as libpq keywords.

    Shared by the ``subscription`` module (the connection its subscription stores) and the
    ``sequences`` module (the connection it reads the publisher's sequences with), so both accept the
    same dict. The password is ``no_log``.
    """
    return dict(
        type="dict",
        options=dict(
            host=dict(type="str"),
            port=dict(type="int"),
            dbname=dict(type="str"),
            user=dict(type="str"),
            password=dict(type="str", no_log=True),
            sslmode=dict(type="str", choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
            sslrootcert=dict(type="str"),
            sslcert=dict(type="str"),
            sslkey=dict(type="str", no_log=False),
            connect_timeout=dict(type="int"),
            application_name=dict(type="str"),
            keepalives=dict(type="int", choices=[0, 1]),
            keepalives_idle=dict(type="int"),
            keepalives_interval=dict(type="int"),
            keepalives_count=dict(type="int"),
            tcp_user_timeout=dict(type="int"),
        ),
    )
