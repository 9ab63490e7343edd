# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""InfluxDB line protocol and a small HTTP client for both write APIs.

Pure Python (``http.client``), no Ansible import: used by the metrics sampler (a daemon that the
``sampler`` role deploys with a copy of this file), by workload modules (phase markers) and by
scripts and tests. The lab's InfluxDB is described in ``.lab/endpoints.json``::

    >>> line("locks", {"node": "publisher", "mode": "AccessShareLock"}, {"lock_count": 3}, 1)
    'locks,mode=AccessShareLock,node=publisher lock_count=3i 1'

API 1 (InfluxDB 1.x, and 2.x/3.x through their v1 compatibility endpoints) writes to
``/write?db=...`` with basic authentication; API 2 writes to ``/api/v2/write?org=...&bucket=...``
with a token. Queries are InfluxQL through ``/query`` on either (on 2.x the bucket needs a DBRP
mapping, which the ``influxdb`` role creates).
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import urllib.parse

# Line protocol escaping (https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/):
# measurements escape commas and spaces; tag keys, tag values and field keys also equal signs;
# string field values escape backslashes and double quotes. Newlines are not representable in
# keys or tag values and end a line anywhere else, so they are written as the two characters \n.
_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n"})
_KEY_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n"})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})

# HTTP statuses after which the same write may succeed later (InfluxDB busy, restarting or
# rate limiting); any other 4xx is the data's fault and retrying it cannot help.
_RETRYABLE_STATUSES = frozenset((408, 429, 500, 502, 503, 504))


class InfluxError(Exception):
    """A failed write or query. ``retryable`` tells whether sending the same request later may work."""

    def __init__(self, message, status=None, retryable=True):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def escape_measurement(name):
    if name is None or str(name) == "":
        raise ValueError("a measurement needs a name")
    return str(name).translate(_MEASUREMENT_ESCAPES)


def escape_key(value):
    """Escape a tag key, a tag value or a field key."""
    return str(value).translate(_KEY_ESCAPES)


def format_field_value(value):
    """The line protocol form of a field value, or None for a value InfluxDB cannot store (None, NaN, inf)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return repr(value)
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    return '"' + str(value).translate(_STRING_ESCAPES) + '"'


def line(measurement, tags=None, fields=None, timestamp_ns=None):
    """One point in line protocol.

    Tags with a None or empty value are left out (InfluxDB rejects empty tag values), tags are
    sorted by key (InfluxDB's recommendation), and fields whose value cannot be stored (None,
    NaN, infinity) are left out. A point with no field left raises ValueError.
    """
    parts = [escape_measurement(measurement)]
    for key in sorted(tags or {}):
        value = tags[key]
        if value is None or str(value) == "":
            continue
        parts.append(f"{escape_key(key)}={escape_key(value)}")
    field_parts = []
    for key, value in (fields or {}).items():
        formatted = format_field_value(value)
        if formatted is not None:
            field_parts.append(f"{escape_key(key)}={formatted}")
    if not field_parts:
        raise ValueError(f"point {measurement!r} has no field with a value")
    text = ",".join(parts) + " " + ",".join(field_parts)
    if timestamp_ns is not None:
        text += f" {int(timestamp_ns)}"
    return text


def _read_secret(path):
    with open(os.path.expanduser(path), encoding="utf-8") as handle:
        return handle.read().strip()


class InfluxClient:
    """Writes line protocol and runs InfluxQL queries over HTTP.

    ``api=1``: ``database`` (and optionally ``username``/``password``, sent as basic auth, never
    in the URL). ``api=2``: ``org``, ``bucket`` and ``token``; queries go to the v1 compatibility
    endpoint with ``database`` defaulting to the bucket.
    """

    def __init__(
        self, url, api=1, database=None, org=None, bucket=None, username=None, password=None, token=None, timeout=5.0
    ):
        api = int(api)
        if api not in (1, 2):
            raise ValueError(f"api must be 1 or 2, not {api}")
        if api == 1 and not database:
            raise ValueError("api 1 needs a database")
        if api == 2 and not (org and bucket and token):
            raise ValueError("api 2 needs org, bucket and token")
        self._split = urllib.parse.urlsplit(url)
        if self._split.scheme not in ("http", "https") or not self._split.hostname:
            raise ValueError(f"InfluxDB URL must be http://host[:port] or https://host[:port], not {url!r}")
        self.url = url.rstrip("/")
        self.api = api
        self.database = database or bucket
        self.org = org
        self.bucket = bucket
        self.timeout = float(timeout)
        self._headers = {}
        if api == 2:
            self._headers["Authorization"] = f"Token {token}"
        elif username:
            credentials = f"{username}:{password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")

    def __repr__(self):
        target = f"db={self.database}" if self.api == 1 else f"org={self.org} bucket={self.bucket}"
        return f"InfluxClient({self.url}, api={self.api}, {target})"

    def _request(self, method, path, params, body=None, content_type=None):
        # http.client rather than urllib.request: urlopen would also follow file:// and ftp://
        # URLs, and modules must not use it (ansible-test: replace-urlopen); this file has to run
        # without Ansible (the sampler), so open_url is no option either.
        connection_class = http.client.HTTPSConnection if self._split.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(self._split.hostname, self._split.port, timeout=self.timeout)
        headers = dict(self._headers)
        if content_type:
            headers["Content-Type"] = content_type
        target = f"{self._split.path.rstrip('/')}{path}"
        if params:
            target += "?" + urllib.parse.urlencode(params)
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            status, payload = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise InfluxError(f"InfluxDB at {self.url} is unreachable: {exc}") from None
        finally:
            connection.close()
        if status >= 300:
            detail = payload.decode("utf-8", "replace").strip()
            try:
                document = json.loads(detail)
                detail = document.get("error") or document.get("message") or detail
            except (ValueError, AttributeError):
                pass
            raise InfluxError(
                f"InfluxDB at {self.url} answered {status} to {path}: {detail[:500]}",
                status=status,
                retryable=status in _RETRYABLE_STATUSES,
            )
        return status, payload

    def write(self, lines, precision="ns"):
        """Send points (an iterable of line protocol strings) in one request."""
        body = "\n".join(lines).encode("utf-8")
        if not body:
            return
        if self.api == 1:
            path, params = "/write", {"db": self.database, "precision": precision}
        else:
            path, params = "/api/v2/write", {"org": self.org, "bucket": self.bucket, "precision": precision}
        self._request("POST", path, params, body, "text/plain; charset=utf-8")

    def query(self, influxql, database=None):
        """Run InfluxQL; return the rows of every series as dicts (``time`` first, series tags merged in).

        Timestamps come back as RFC 3339 strings. A statement error raises InfluxError.
        """
        status, body = self._request(
            "POST",
            "/query",
            {"db": database or self.database},
            urllib.parse.urlencode({"q": influxql}).encode(),
            "application/x-www-form-urlencoded",
        )
        try:
            document = json.loads(body or b"{}")
        except ValueError:
            raise InfluxError(
                f"InfluxDB at {self.url} answered {status} with no JSON to /query", status=status, retryable=False
            ) from None
        if document.get("error"):
            raise InfluxError(f"InfluxQL failed: {document['error']}", status=status, retryable=False)
        rows = []
        for result in document.get("results", []):
            if result.get("error"):
                raise InfluxError(f"InfluxQL failed: {result['error']}", status=status, retryable=False)
            for series in result.get("series", []):
                tags = series.get("tags") or {}
                for values in series.get("values", []):
                    row = dict(zip(series["columns"], values))  # noqa: B905 (runs on Python < 3.10 too)
                    row.update(tags)
                    row.setdefault("_measurement", series.get("name"))
                    rows.append(row)
        return rows

    def ping(self):
        """True when the server answers /ping."""
        try:
            status = self._request("GET", "/ping", {})[0]
        except InfluxError:
            return False
        return 200 <= status < 300


def client_from_endpoints(source, timeout=5.0):
    """An InfluxClient for the ``influxdb`` section of endpoints.json (a path or the loaded dict).

    Returns None when the lab has no InfluxDB. Passwords and tokens are read from the files the
    section names, relative paths from the directory of endpoints.json.
    """
    base_dir = "."
    if isinstance(source, dict):
        document = source
    else:
        base_dir = os.path.dirname(os.path.abspath(source))
        with open(source, encoding="utf-8") as handle:
            document = json.load(handle)
    section = document.get("influxdb")
    if not section:
        return None

    def secret(key):
        path = section.get(key)
        if not path:
            return None
        return _read_secret(path if os.path.isabs(path) else os.path.join(base_dir, path))

    if int(section.get("api", 1)) == 2:
        api, target = 2, dict(org=section.get("org"), bucket=section.get("bucket"))
        target["token"] = section.get("token") or secret("token_file")
    else:
        api, target = 1, dict(database=section.get("database"), username=section.get("username"))
        target["password"] = section.get("password") or secret("password_file")
    return InfluxClient(section["url"], api=api, timeout=timeout, **target)
