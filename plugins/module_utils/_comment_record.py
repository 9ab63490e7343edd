# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small JSON record kept as an object's comment, so that a module remembers across runs what it did.

``subscription_pause`` keeps its pause record as the subscription's comment (``_pause``), ``write_fence``
its fence record as the role's comment (``_write_fence``). Both keep the comment the object had before
inside the record and put it back when the record is cleared, so a person's own comment survives.
The times in a record are UTC ISO 8601 text.
"""

from __future__ import annotations

import datetime
import json

UTC = datetime.timezone(datetime.timedelta(0))
"""UTC (``datetime.UTC`` needs Python 3.11; managed hosts may run older ones)."""

PREVIOUS_COMMENT = "previous_comment"
"""The key of a record that keeps the object's own comment from before the record."""


def utc_now():
    return datetime.datetime.now(UTC)


def iso_utc(moment, precise=False):
    """``2026-12-04T16:00:00Z`` (seconds, UTC); ``precise``: with microseconds (``...T16:00:00.123456Z``)."""
    moment = moment.astimezone(UTC)
    if not precise:
        return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text):
    """An ISO 8601 time as an aware UTC datetime; a time without zone is UTC. ``None`` for ``None``/''.

    Raises ``ValueError`` for text that is not a time.
    """
    if text in (None, ""):
        return None
    if isinstance(text, datetime.datetime):
        moment = text
    else:
        value = str(text).strip()
        if value.endswith(("Z", "z")):
            value = value[:-1] + "+00:00"
        moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def load_json_comment(comment):
    """The JSON object in ``comment``, or ``None`` when the comment is not one (none, plain text, broken JSON, a list).

    Whether the object is a record of a particular module is the caller's question.
    """
    if not comment or not str(comment).lstrip().startswith("{"):
        return None
    try:
        data = json.loads(comment)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def dump_json_comment(record, keys):
    """The comment text of ``record``: compact JSON with ``keys`` in that order (``None`` values left out),
    then the kept :data:`PREVIOUS_COMMENT`."""
    ordered = {key: record[key] for key in keys if record.get(key) is not None}
    if record.get(PREVIOUS_COMMENT):
        ordered[PREVIOUS_COMMENT] = record[PREVIOUS_COMMENT]
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)


def kept_comment(data):
    """The :data:`PREVIOUS_COMMENT` of a loaded JSON object when it is non-empty text, else ``None``."""
    value = (data or {}).get(PREVIOUS_COMMENT)
    return value if isinstance(value, str) and value else None


def comment_to_keep(comment, record):
    """The object's own comment to keep in a new record: the record's kept comment when the comment already is
    a record, else the comment itself (``None`` when there is none)."""
    if record is not None:
        return record.get(PREVIOUS_COMMENT) or None
    return comment or None
