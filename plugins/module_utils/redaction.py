# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Secret redaction for everything a module returns or reports.

Pure Python, no third-party imports. Used on ``queries``, error messages, returned
state and warnings, and usable on libpq connection strings in both forms::

    >>> redact("host=db password=s3cret user=app")
    'host=db password=******** user=app'
    >>> redact("postgresql://app:s3cret@db:5432/app")
    'postgresql://app:********@db:5432/app'
    >>> redact("CREATE SUBSCRIPTION s CONNECTION 'host=db password=''x y''' ...", ["x y"])
    "CREATE SUBSCRIPTION s CONNECTION 'host=db password=''********''' ..."
"""

from __future__ import annotations

import re

MASK = "********"
"""The replacement text for every redacted secret."""

# key = value pairs of libpq conninfo strings (password, sslpassword).  The value is
# one of: a conninfo-quoted value embedded in an SQL literal ('' ... ''), a
# conninfo-quoted value ('...', backslash escapes), or a bare word that stops at
# white space and quotes (so the closing quote of an enclosing SQL literal survives).
_KV_PASSWORD = re.compile(
    r"""(?P<key>(?<![A-Za-z0-9_?&])(?:ssl)?password\s*=\s*)"""
    r"""(?P<value>''(?:''''|\\.|[^'\\])*''|'(?:\\.|[^'\\])*'|[^\s'"]+)""",
    re.IGNORECASE,
)
# user:password@ in URIs (postgresql://, postgres://, and any other scheme).
_URI_USERINFO = re.compile(r"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s'\"]*:)(?P<value>[^@\s'\"]*)(?=@)")
# ?password=...&sslpassword=... URI query parameters.
_URI_QUERY = re.compile(r"(?P<prefix>[?&](?:ssl)?password=)(?P<value>[^&\s'\"#]*)", re.IGNORECASE)


def _secret_variants(secret):
    """Return the literal forms a secret can take in SQL text and conninfo strings."""
    variants = {secret}
    sql_quoted = secret.replace("'", "''")
    conninfo_quoted = secret.replace("\\", "\\\\").replace("'", "\\'")
    variants.add(sql_quoted)
    variants.add(conninfo_quoted)
    variants.add(conninfo_quoted.replace("'", "''"))
    # Inside an E'...' literal (psycopg quotes strings with backslashes that way) every
    # backslash is doubled: password=''it\\''s'' for it's.
    variants.update([v.replace("\\", "\\\\") for v in variants if "\\" in v])
    return variants


def _keep_quotes(match):
    value = match.group("value")
    if value.startswith("''") and value.endswith("''") and len(value) >= 4:
        return match.group("key") + "''" + MASK + "''"
    if value.startswith("'") and value.endswith("'") and len(value) >= 2:
        return match.group("key") + "'" + MASK + "'"
    return match.group("key") + MASK


def redact(text, secrets=()):
    """Return ``text`` with secrets replaced by :data:`MASK`.

    Removes every occurrence of each value in ``secrets`` (also in its SQL-quoted and
    conninfo-escaped forms), then masks ``password=...``/``sslpassword=...`` in libpq
    key/value strings, the password part of ``scheme://user:password@host`` URIs and
    ``?password=`` URI parameters, even for passwords the caller did not know about.

    Non-string input is returned unchanged. Empty or ``None`` secrets are ignored.
    """
    if not isinstance(text, str) or not text:
        return text
    known = set()
    for secret in secrets or ():
        if secret is None:
            continue
        secret = str(secret)
        if secret:
            known.update(_secret_variants(secret))
    # Longest first so that a secret containing another one is removed as a whole.
    for variant in sorted(known, key=len, reverse=True):
        text = text.replace(variant, MASK)
    text = _KV_PASSWORD.sub(_keep_quotes, text)
    text = _URI_USERINFO.sub(lambda m: m.group("prefix") + MASK, text)
    text = _URI_QUERY.sub(lambda m: m.group("prefix") + MASK, text)
    return text


def redact_data(data, secrets=()):
    """Recursively apply :func:`redact` to every string (keys included) in dicts, lists and tuples."""
    if isinstance(data, str):
        return redact(data, secrets)
    if isinstance(data, dict):
        return {redact_data(k, secrets): redact_data(v, secrets) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact_data(v, secrets) for v in data)
    return data
