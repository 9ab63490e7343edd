# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The subscription planner: desired options vs the subscription -> statements, and their run.

The ``subscription`` module's logic. It reads through ``_subscriptions.py`` (the only SQL reading
``pg_subscription*``) and waits for the initial synchronization with ``subscription_sync.py``.
"""

from __future__ import annotations

import copy
import re
import time

from ansible_collections.inventium.logical_replication.plugins.module_utils._object_list import check_items, run_items
from ansible_collections.inventium.logical_replication.plugins.module_utils._subscriptions import (
    ORIGIN_LSN_QUERY,
    REL_IDS_QUERY,
    SUBSCRIPTION_CONNINFO_PRIVILEGE_QUERY,
    SYNCING_REL_IDS_QUERY,
    WORKERS_RUNNING_QUERY,
    named_subscriptions_query,
    subscription_query,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    BINARY_STREAMING_MAJOR,
    FAILOVER_MAJOR,
    FINISHED_COPY_MAJOR,
    PARALLEL_APPLY_MAJOR,
    SKIP_MAJOR,
    STREAMING_DEFAULT_PARALLEL_MAJOR,
    STREAMING_FROM_CATALOG,
    STREAMING_PARALLEL_MAJOR,
    SUBSCRIPTION_STATS_MAJOR,
    TWO_PHASE_STATES,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    SUBSCRIPTION_OPTION_MAJORS as WITH_OPTIONS,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    format_db_error,
    psycopg,
    sql,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import (
    ConninfoError,
    conninfo_diff,
    conninfo_secrets,
    make_conninfo,
    parse_conninfo,
    redact_conninfo,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (
    IdentifierError,
    ident,
    parse_identifier,
    quote_ident,
    unique_names,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.subscription_sync import (
    read_tables,
    wait_for_sync,
)

STOP_WAIT_SECONDS = 30


CREATE_ONLY_OPTIONS = ("copy_data", "create_slot")


SLOT_OPTIONS = ("failover",)


DISABLED_ONLY_OPTIONS = ("failover", "two_phase")
"""Options ALTER SUBSCRIPTION ... SET changes only while the subscription is disabled (PostgreSQL's docs)."""


PUBLISHER_KEYS = (
    "host",
    "port",
    "dbname",
    "user",
    "password",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
)


# Keys of the ``publisher`` option that are counts or durations: libpq refuses negative values
# only when the subscriber's server first connects, so they are checked here.
PUBLISHER_NON_NEGATIVE_KEYS = (
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
)


SYNC_COMMIT_VALUES = ("off", "local", "remote_write", "remote_apply", "on")


STREAMING_VALUES = ("off", "on", "parallel")


ORIGIN_VALUES = ("none", "any")


_BOOL_WORDS = {"true": "on", "yes": "on", "1": "on", "on": "on", "false": "off", "no": "off", "0": "off", "off": "off"}


_SLOT_NAME = re.compile(r"[a-z0-9_]{1,63}\Z")


_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\Z")


class OptionError(ValueError):
    """Invalid module input; ``str()`` names the offending option."""


def _normalize_choice(value, choices, option):
    """One of ``choices`` (lower case); booleans and their words map to on/off."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip().lower()
    text = _BOOL_WORDS.get(text, text)
    if text not in choices:
        raise OptionError(f"{option}: {value!r} is not one of {', '.join(choices)}")
    return text


def normalize_synchronous_commit(value, option="synchronous_commit"):
    """``on``/``off``/``local``/``remote_write``/``remote_apply``; booleans and their words map to on/off."""
    return _normalize_choice(value, SYNC_COMMIT_VALUES, option)


def stored_synchronous_commit(value):
    """The stored ``subsynccommit`` normalized like the option (unknown values unchanged)."""
    try:
        return normalize_synchronous_commit(value)
    except OptionError:
        return value


def normalize_streaming(value, option="streaming"):
    """``off``/``on``/``parallel``; booleans and their words map to on/off."""
    return _normalize_choice(value, STREAMING_VALUES, option)


def parse_lsn(text, option="skip_lsn"):
    """``'0/14c0378'`` -> integer position; raises :class:`OptionError` when malformed."""
    match = _LSN.match(str(text).strip())
    if not match:
        raise OptionError(f"{option}: {text!r} is not an LSN (expected hex/hex, for example 0/14C0378)")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value):
    """Integer position -> PostgreSQL's text form ``'0/14C0378'``."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def normalize_slot_name(value):
    """``None`` (not managed), ``''`` for NONE, or a validated slot name."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() == "none" or text == "":
        return ""
    if not _SLOT_NAME.match(text):
        raise OptionError(
            f"slot_name: {value!r} is not a valid replication slot name (lower-case letters, digits and "
            "underscores, at most 63 characters), nor NONE"
        )
    return text


def _parse_name(text, option):
    if not isinstance(text, str):
        raise OptionError(f"{option}: expected a name (string), got {type(text).__name__}")
    try:
        return parse_identifier(text)
    except IdentifierError as exc:
        raise OptionError(f"{option}: invalid name {text!r}: {exc}") from None


def parse_publications(values):
    """Exact publication names (a list in the given order); ``None`` stays ``None``."""
    if values is None:
        return None
    if not values:
        raise OptionError("publications: a subscription needs at least one publication")
    return unique_names(values, "publications", "publication", _parse_name, OptionError)


def publisher_params(publisher):
    """The connection dict (libpq keywords, given keys only, in a stable order) of the ``publisher`` option."""
    params = {}
    for key in PUBLISHER_KEYS:
        value = (publisher or {}).get(key)
        if value is None:
            continue
        if key in PUBLISHER_NON_NEGATIVE_KEYS and isinstance(value, int) and value < 0:
            raise OptionError(f"publisher.{key}: must be 0 or more (is {value})")
        params[key] = str(value)
    return params


def default_options(name, major):
    """Catalog values of a subscription created now without options (by server major)."""
    options = {
        "enabled": True,
        "slot_name": name,
        "synchronous_commit": "off",
    }
    if major >= BINARY_STREAMING_MAJOR:
        options["binary"] = False
        options["streaming"] = "parallel" if major >= STREAMING_DEFAULT_PARALLEL_MAJOR else "off"
    if major >= SUBSCRIPTION_STATS_MAJOR:
        options["two_phase"] = False
        options["disable_on_error"] = False
    if major >= PARALLEL_APPLY_MAJOR:
        options["origin"] = "any"
        options["run_as_owner"] = False
        options["password_required"] = True
    if major >= FAILOVER_MAJOR:
        options["failover"] = False
    return options


class Desired:
    """The validated, parsed module options (no database access)."""

    def __init__(self, params):
        self.name = _parse_name(params["name"], "name")
        self.state = params.get("state") or "present"
        self.publications = parse_publications(params.get("publications"))
        self.conn_text = None
        self.conn_params = None
        self.raw_conninfo = params.get("conninfo") is not None
        # Bounds how long dropping waits for the publisher (with the module's connect_timeout as fallback).
        self.publisher_connect_timeout = (params.get("publisher") or {}).get("connect_timeout")
        if params.get("publisher") is not None:
            self.conn_params = publisher_params(params["publisher"])
            if not self.conn_params:
                raise OptionError("publisher: give at least one connection key (host, port, dbname, user ...)")
            self.conn_text = make_conninfo(self.conn_params)
        elif params.get("conninfo") is not None:
            self.conn_text = params["conninfo"]
            try:
                self.conn_params = parse_conninfo(self.conn_text)
            except ConninfoError as exc:
                raise OptionError(f"conninfo: {exc}") from None
            if not self.conn_params:
                raise OptionError("conninfo: the connection string is empty")
        owner = params.get("owner")
        self.owner = _parse_name(owner, "owner") if owner not in (None, "") else None
        self.enabled = params.get("enabled")
        self.copy_data = params.get("copy_data")
        self.create_slot = params.get("create_slot")
        self.refresh = bool(params.get("refresh"))
        self.recreate = bool(params.get("recreate"))
        self.wait_for_sync = bool(params.get("wait_for_sync"))
        self.sync_timeout = params.get("sync_timeout")
        if self.sync_timeout is None:
            self.sync_timeout = 300
        if self.sync_timeout <= 0:
            raise OptionError("sync_timeout: must be a positive number of seconds")
        self.skip_lsn = None
        if params.get("skip_lsn") not in (None, ""):
            self.skip_lsn = format_lsn(parse_lsn(params["skip_lsn"]))
        options = {}
        slot = normalize_slot_name(params.get("slot_name"))
        if slot is not None:
            options["slot_name"] = slot or None
        sync_commit = normalize_synchronous_commit(params.get("synchronous_commit"))
        if sync_commit is not None:
            options["synchronous_commit"] = sync_commit
        streaming = normalize_streaming(params.get("streaming"))
        if streaming is not None:
            options["streaming"] = streaming
        for key in ("binary", "two_phase", "disable_on_error", "run_as_owner", "password_required", "failover"):
            if params.get(key) is not None:
                options[key] = bool(params[key])
        if params.get("origin") is not None:
            if params["origin"] not in ORIGIN_VALUES:
                raise OptionError(f"origin: {params['origin']!r} is not one of {', '.join(ORIGIN_VALUES)}")
            options["origin"] = params["origin"]
        self.options = options
        self.detached = "slot_name" in options and options["slot_name"] is None
        if self.detached:
            if self.enabled:
                raise OptionError("slot_name: NONE needs enabled: false (a subscription without a slot cannot run)")
            if self.create_slot:
                raise OptionError("slot_name: NONE conflicts with create_slot: true")
        if self.wait_for_sync and self.enabled is False:
            raise OptionError("wait_for_sync: true needs an enabled subscription, but enabled is false")

    def secrets(self):
        """Values to redact: the passwords; a raw ``conninfo`` (no_log) entirely, as Ansible does."""
        values = conninfo_secrets(self.conn_params)
        if self.raw_conninfo:
            values.append(self.conn_text)
        return values


def version_problems(desired, major):
    """``[(option, min_major, reason)]`` for options the server's major version lacks."""
    problems = []
    for key, (minimum, _alter) in WITH_OPTIONS.items():
        if key in desired.options and major < minimum:
            problems.append((key, minimum, None))
    if desired.options.get("streaming") == "parallel" and major < STREAMING_PARALLEL_MAJOR:
        problems.append(("streaming", STREAMING_PARALLEL_MAJOR, "streaming: parallel needs it"))
    if desired.skip_lsn is not None and major < SKIP_MAJOR:
        problems.append(("skip_lsn", SKIP_MAJOR, "ALTER SUBSCRIPTION ... SKIP needs it"))
    return problems


def option_sql(key, value):
    """``key = value`` for a WITH (...) / SET (...) list; option names are constants, values literals."""
    if value is None:
        return sql.SQL("{} = NONE").format(sql.SQL(key))
    if isinstance(value, bool):
        return sql.SQL("{} = {}").format(sql.SQL(key), sql.SQL("true" if value else "false"))
    return sql.SQL("{} = {}").format(sql.SQL(key), sql.Literal(str(value)))


def options_sql(options):
    return sql.SQL(", ").join(option_sql(k, v) for k, v in options.items())


def publications_sql(names):
    return sql.SQL(", ").join(ident(n) for n in names)


# CREATE SUBSCRIPTION's error when the publisher has a slot of that name already (the publisher's error, relayed).
SLOT_EXISTS = re.compile(r'replication slot "[^"]*" already exists')
SLOT_EXISTS_HINT = (
    "The publisher has a replication slot of this name already: left by an earlier subscription of this name (this "
    "node re-created with an empty data directory - e.g. another major on the same volume -, or a subscription "
    "dropped without its slot). If nothing uses it, drop it on the publisher (inventium.logical_replication."
    "replication_slot, state: absent) and run again; otherwise give this subscription another slot_name"
)


def create_sql(name, conninfo, publications, options):
    statement = sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}").format(
        ident(name), sql.Literal(conninfo), publications_sql(publications)
    )
    if options:
        statement += sql.SQL(" WITH ({})").format(options_sql(options))
    return statement


def alter_sql(name, text, *args):
    return sql.SQL("ALTER SUBSCRIPTION {} ").format(ident(name)) + sql.SQL(text).format(*args)


def publication_change(name, current, desired, refresh, copy_data):
    """``(statement, resulting list)`` turning the ``current`` publication list into ``desired``.

    ADD or DROP when only adding or only removing, SET otherwise; ``None`` when the sets are equal.
    """
    added = [p for p in desired if p not in current]
    removed = [p for p in current if p not in desired]
    if not added and not removed:
        return None, list(current)
    with_options = {"refresh": bool(refresh)}
    if refresh and copy_data is not None:
        with_options["copy_data"] = bool(copy_data)
    if added and not removed:
        verb, names, result = "ADD", added, list(current) + added
    elif removed and not added:
        verb, names, result = "DROP", removed, [p for p in current if p not in removed]
    else:
        verb, names, result = "SET", list(desired), list(desired)
    statement = alter_sql(name, verb + " PUBLICATION {} WITH ({})", publications_sql(names), options_sql(with_options))
    return statement, result


def owner_sql(name, owner):
    return alter_sql(name, "OWNER TO {}", ident(owner))


def refresh_sql(name, copy_data):
    statement = alter_sql(name, "REFRESH PUBLICATION")
    if copy_data is not None:
        statement += sql.SQL(" WITH ({})").format(option_sql("copy_data", bool(copy_data)))
    return statement


def state_from_row(row):
    """Internal state of a subscription from its catalog row (options of older versions absent)."""
    if row is None:
        return None
    state = {
        "oid": row["oid"],
        "name": row["name"],
        "owner": row["owner"],
        "enabled": row["enabled"],
        "publications": list(row["publications"] or []),
        "_conninfo": row["conninfo"],
        "slot_name": row["slot_name"],
        "synchronous_commit": stored_synchronous_commit(row["synchronous_commit"]),
    }
    if "binary" in row:
        state["binary"] = row["binary"]
        state["streaming"] = STREAMING_FROM_CATALOG.get(row["streaming"], row["streaming"])
    if "two_phase_state" in row:
        state["two_phase"] = row["two_phase_state"] != "d"
        state["two_phase_state"] = TWO_PHASE_STATES.get(row["two_phase_state"], row["two_phase_state"])
        state["disable_on_error"] = row["disable_on_error"]
        state["skip_lsn"] = None if row["skip_lsn"] in (None, "0/0") else row["skip_lsn"]
    for key in ("origin", "run_as_owner", "password_required", "failover"):
        if key in row:
            state[key] = row[key]
    return state


PUBLIC_KEYS = (
    "name",
    "oid",
    "owner",
    "enabled",
    "publications",
    "conninfo",
    "slot_name",
    "synchronous_commit",
    "binary",
    "streaming",
    "two_phase",
    "two_phase_state",
    "disable_on_error",
    "skip_lsn",
    "origin",
    "run_as_owner",
    "password_required",
    "failover",
)


def public_state(state, tables=None):
    """The returned state: password-free conninfo, no internal keys; ``{}`` when absent."""
    if not state:
        return {}
    result = {}
    for key in PUBLIC_KEYS:
        if key == "conninfo":
            result[key] = redact_conninfo(state.get("_conninfo"))
        elif key in state:
            result[key] = state[key]
    if tables is not None:
        result["tables"] = tables
    return result


def diff_state(state):
    """The diff side of a state (like :func:`public_state`, without the ever-changing ``tables``)."""
    return public_state(state)


class Step:
    """One statement of the plan: ``autocommit`` ones run outside the module's transaction."""

    def __init__(self, statement, autocommit=False, kind="main", describe=None):
        self.statement = statement
        self.autocommit = autocommit
        self.kind = kind
        self.describe = describe


SESSION_QUERY = "SELECT current_user::text AS current_user"


OWNER_ROLE_QUERY = "SELECT r.rolsuper AS superuser FROM pg_catalog.pg_roles r WHERE r.rolname = %s"


def read_subscriptions(m, names):
    """The list form's one catalog read before planning: the session's role, and the named subscriptions.

    Returns what :class:`SubscriptionModule` takes as ``catalog``: ``session``, ``conninfo_readable``
    (may the login role read ``subconninfo``) and ``rows`` (catalog row by exact name; absent: no key).
    """
    readable = m.query_one(SUBSCRIPTION_CONNINFO_PRIVILEGE_QUERY)["allowed"]
    rows = m.query(named_subscriptions_query(m.server_major, readable), [list(names)])
    return {
        "session": dict(m.query_one(SESSION_QUERY)),
        "conninfo_readable": readable,
        "rows": {row["name"]: row for row in rows},
    }


class SubscriptionModule:
    """One subscription: read -> plan (:meth:`prepare`, no writes) -> statements (:meth:`apply`) -> report.

    The single form (``name``) is :meth:`run`. The list form (``subscriptions``) reads the catalog
    once (:func:`read_subscriptions`, passed as ``catalog``), prepares every item before applying
    any (``_object_list.run_items``) and commits each item's changes before the next item starts,
    since statements with a slot cannot run in a transaction block anyway.
    """

    def __init__(self, module, desired, catalog=None):
        self.m = module
        self.d = desired
        self.major = module.server_major
        self.display = quote_ident(desired.name)
        self.warnings = []
        self.applied = []  # committed statements (reported when a later statement fails)
        self.uncommitted = []  # statements of the open transaction
        self.refresh_only = False
        self.temporarily_disabled = False  # planned: disabled for a DISABLED_ONLY_OPTIONS change, enabled again
        self.reenable_pending = False  # applied: that DISABLE is committed and the ENABLE is not yet
        self.conninfo_readable = True
        self.catalog = catalog
        self.session = catalog["session"] if catalog else None

    # -- helpers --------------------------------------------------------------------------------

    def fail(self, msg, **extra):
        msg += self.restore_enabled()
        if self.applied:
            extra.setdefault("changed", True)
        self.m.fail(msg, **extra)

    def restore_enabled(self):
        """After a failure: enable again what the module disabled for a failover/two_phase change (a sentence)."""
        if not self.reenable_pending:
            return ""
        self.reenable_pending = False
        try:
            self.m.execute(alter_sql(self.d.name, "ENABLE"), autocommit=True, raise_errors=True)
        except psycopg.Error as exc:
            return (
                f". The module had disabled subscription {self.display} for the change and could not enable it "
                f"again ({format_db_error(exc, ())}): it is left disabled - run ALTER SUBSCRIPTION ... ENABLE"
            )
        self.applied.append(self.m.queries[-1])
        return f". Subscription {self.display}, disabled for the change, was enabled again"

    def run_query(self, statement, params=None):
        return self.m.query(statement, params)

    def try_query(self, statement, params=None):
        """A read that may fail (privileges, ...): returns ``None`` instead of failing the module."""
        try:
            with self.m.conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall()
        except psycopg.Error:
            return None

    def on_notice(self, diag):
        if (diag.severity_nonlocalized or diag.severity) == "WARNING" and diag.message_primary:
            self.warnings.append(f"PostgreSQL: {diag.message_primary}")

    def read(self):
        readable = self.run_query(SUBSCRIPTION_CONNINFO_PRIVILEGE_QUERY)[0]["allowed"]
        self.conninfo_readable = readable
        row = self.m.query_one(subscription_query(self.major, readable), [self.d.name])
        return self.state_of(row)

    def read_current(self):
        """The subscription before any change: from the list form's one read, else a query of its own."""
        if self.catalog is None:
            return self.read()
        self.conninfo_readable = self.catalog["conninfo_readable"]
        return self.state_of(self.catalog["rows"].get(self.d.name))

    def state_of(self, row):
        """The internal state of a catalog row (``None``: absent), its stored connection parsed and its secrets kept."""
        state = state_from_row(row)
        if state is not None:
            state["_conn_params"] = None
            if state["_conninfo"]:
                try:
                    state["_conn_params"] = parse_conninfo(state["_conninfo"])
                except ConninfoError:
                    self.m.add_secret(state["_conninfo"])  # cannot tell the password apart: hide it all
                self.m.add_secret(*conninfo_secrets(state["_conn_params"]))
        return state

    def tables(self, state):
        if not state or not state.get("oid"):
            return []
        return read_tables(self.run_query, state["oid"])

    def rel_set(self, oid):
        rows = self.run_query(REL_IDS_QUERY, [oid])
        return sorted(r["relid"] for r in rows)

    def statement_failed(self, exc):
        message = format_db_error(exc, (), f"executing {self.m.queries[-1]} failed")
        if SLOT_EXISTS.search(message):
            message += ". " + SLOT_EXISTS_HINT
        if self.applied:
            message += ". Applied before the failure (committed): " + "; ".join(self.applied)
        self.fail(message, sqlstate=exc.sqlstate)

    def committed(self):
        self.applied.extend(self.uncommitted)
        self.uncommitted = []

    def execute(self, step):
        """Run one step; on a database error fail, naming what was committed already."""
        if step.autocommit:
            self.committed()  # PgModule commits the open transaction first
        try:
            self.m.execute(step.statement, autocommit=step.autocommit, raise_errors=True)
        except psycopg.Error as exc:
            self.statement_failed(exc)
        if self.m.check_mode:
            return
        self.uncommitted.append(self.m.queries[-1])
        if step.autocommit:
            self.committed()

    def commit(self):
        self.m.commit()
        if not self.m.check_mode:
            self.committed()

    def wait_workers_stopped(self, oid):
        """After DISABLE: wait (bounded) until no worker of the subscription runs any more."""
        if self.m.check_mode:
            return
        self.commit()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        interval = 0.02
        while True:
            row = self.m.query_one(WORKERS_RUNNING_QUERY, [oid])
            if not row["n"]:
                return
            if time.monotonic() > deadline:
                self.fail(
                    f"subscription {self.display} was disabled, but its workers are still running after "
                    f"{STOP_WAIT_SECONDS} s"
                )
            time.sleep(interval)
            interval = min(0.5, interval * 1.5)

    def run_slot_step(self, step):
        """ALTER ... SET (failover/two_phase): retry while the publisher's walsender still holds the slot."""
        if self.m.check_mode:
            self.execute(step)
            return
        self.committed()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while True:
            try:
                self.m.execute(step.statement, autocommit=True, raise_errors=True)
                self.applied.append(self.m.queries[-1])
                return
            except psycopg.Error as exc:
                if exc.sqlstate == "55006" and time.monotonic() < deadline:  # object_in_use: walsender holds the slot
                    self.m.queries.pop()
                    time.sleep(0.2)
                    continue
                self.statement_failed(exc)

    # -- validation -----------------------------------------------------------------------------

    def check_versions(self):
        self.m.require_versions("subscription module", version_problems(self.d, self.major))

    def check_owner(self):
        """``owner`` must name a role (before anything is changed); returns whether it is a superuser."""
        if self.d.owner is None:
            return None
        rows = self.run_query(OWNER_ROLE_QUERY, [self.d.owner])
        if not rows:
            self.m.fail(f"owner: role {quote_ident(self.d.owner)} does not exist; nothing was changed")
        return rows[0]["superuser"]

    def check_owner_password(self, target, owner_superuser):
        """PostgreSQL 16+ lets the apply worker of a non-superuser owner with password_required connect only with
        a password; ALTER SUBSCRIPTION ... OWNER TO does not check it, so a subscription handed over without one
        would only fail in the server log, retrying for ever. Refused here, before anything is changed."""
        if owner_superuser is not False:
            return
        if self.major < PARALLEL_APPLY_MAJOR:
            self.m.fail(
                f"owner: role {quote_ident(self.d.owner)} is not a superuser; PostgreSQL lets a non-superuser own a "
                f"subscription from PostgreSQL {PARALLEL_APPLY_MAJOR} (server is {self.major}); nothing was changed"
            )
        params = target.get("_conn_params")
        if params is None or not target.get("password_required", True) or params.get("password"):
            return
        self.m.fail(
            f"owner: role {quote_ident(self.d.owner)} is not a superuser and password_required is true, so from "
            f"PostgreSQL 16 the apply worker of subscription {self.display} must connect to the publisher with a "
            "password, but its connection has none: add publisher.password (or password= to conninfo), or set "
            "password_required: false (PostgreSQL allows that only to superusers); nothing was changed"
        )

    # -- planning -------------------------------------------------------------------------------

    def target_state(self, current):
        """The state the subscription must have after the run (without recreate)."""
        d = self.d
        if current is None:
            target = default_options(d.name, self.major)
            target.update({"name": d.name, "oid": None, "owner": self.session["current_user"]})
            target["publications"] = list(d.publications or [])
            target["_conninfo"] = d.conn_text
            target["_conn_params"] = d.conn_params
            if d.detached:
                target["enabled"] = False
            if self.major >= SUBSCRIPTION_STATS_MAJOR:
                target["skip_lsn"] = None
                target["two_phase_state"] = "disabled"
        else:
            target = copy.deepcopy(current)
            if d.conn_text is not None:
                target["_conninfo"] = d.conn_text
                target["_conn_params"] = d.conn_params
        target.update(d.options)
        if d.owner is not None:
            target["owner"] = d.owner
        if d.enabled is not None:
            target["enabled"] = d.enabled
        if self.major >= SUBSCRIPTION_STATS_MAJOR:
            if "two_phase" in d.options and (current is None or current.get("two_phase") != d.options["two_phase"]):
                target["two_phase_state"] = "pending" if d.options["two_phase"] else "disabled"
        if current is not None and d.publications is not None:
            _stmt, target["publications"] = publication_change(
                d.name, current["publications"], d.publications, False, None
            )
        return target

    def create_options(self, target, given):
        """WITH (...) options of CREATE SUBSCRIPTION: the given ones plus every non-default target value."""
        defaults = default_options(self.d.name, self.major)
        options = {}
        if "enabled" in given or target["enabled"] != defaults["enabled"]:
            options["enabled"] = target["enabled"]
        for key in WITH_OPTIONS:
            if key not in target or key not in defaults:
                continue
            if key in given or target[key] != defaults[key]:
                options[key] = target[key]
        for key in CREATE_ONLY_OPTIONS:
            value = getattr(self.d, key)
            if value is not None:
                options[key] = value
        if target.get("slot_name") is None and "create_slot" not in options:
            options["create_slot"] = False
        return options

    def plan_create(self, target):
        d = self.d
        if d.conn_text is None:
            self.m.fail(f"subscription {self.display} does not exist: publisher or conninfo is needed to create it")
        if not d.publications:
            self.m.fail(f"subscription {self.display} does not exist: publications are needed to create it")
        if d.skip_lsn is not None:
            self.m.fail("skip_lsn: the subscription does not exist yet; there is no transaction to skip")
        if d.refresh and not target["enabled"]:
            self.m.fail("refresh: true needs an enabled subscription")
        if target.get("slot_name") and not _SLOT_NAME.match(target["slot_name"]) and d.create_slot is not False:
            self.m.fail(
                f"the replication slot would be named like the subscription, {target['slot_name']!r}, which is not a "
                "valid slot name (lower-case letters, digits and underscores): set slot_name"
            )
        given = set(d.options) | ({"enabled"} if d.enabled is not None else set())
        options = self.create_options(target, given)
        steps = [Step(create_sql(d.name, d.conn_text, target["publications"], options), autocommit=True, kind="create")]
        if target["owner"] != self.session["current_user"]:
            steps.append(Step(owner_sql(d.name, target["owner"])))
        return steps

    def not_alterable(self, current, target):
        """``[(option, reason)]`` of changes ALTER SUBSCRIPTION cannot make on this server now."""
        problems = []
        for key, (_minimum, alter_min) in WITH_OPTIONS.items():
            if key not in self.d.options or current.get(key) == target.get(key):
                continue
            if self.major < alter_min:
                problems.append(
                    (key, f"ALTER SUBSCRIPTION can change it from PostgreSQL {alter_min} (server is {self.major})")
                )
                continue
        return problems

    def plan_alter(self, current, target):
        d, name = self.d, self.d.name
        steps_pre, steps_slot, steps_main, steps_post = [], [], [], []
        cur_enabled, tgt_enabled = current["enabled"], target["enabled"]

        conn_keys = []
        if d.conn_text is not None:
            if not self.conninfo_readable:
                self.m.fail(
                    f"the login role may not read the connection of subscription {self.display} (subconninfo): "
                    "connect as a superuser to manage publisher/conninfo"
                )
            if current.get("_conn_params") is None:
                conn_keys = ["(unparsable stored connection)"]
            else:
                conn_keys = conninfo_diff(current["_conn_params"], d.conn_params)

        changes = {k: v for k, v in d.options.items() if current.get(k) != v}
        slot_changes = {k: v for k, v in changes.items() if k in SLOT_OPTIONS}
        if "two_phase" in changes and not changes["two_phase"]:
            slot_changes["two_phase"] = False  # true -> false alters the slot (PostgreSQL 18)
        main_changes = {k: v for k, v in changes.items() if k not in slot_changes}

        if target.get("slot_name") is None and tgt_enabled:
            self.m.fail("slot_name: NONE needs enabled: false (a subscription without a slot cannot run)")
        if slot_changes and target.get("slot_name") is None:
            self.m.fail(
                f"{', '.join(slot_changes)}: cannot be changed while the subscription has no slot (slot_name NONE)"
            )
        if slot_changes and "slot_name" in changes:
            self.m.fail(
                f"slot_name and {', '.join(slot_changes)} cannot be changed in the same task ("
                f"{', '.join(slot_changes)} is applied to the slot): change slot_name first"
            )

        # Publications and refresh: need an enabled subscription when they run (outside a transaction).
        pub_statement = None
        refresh_wanted = False
        if d.publications is not None:
            pub_statement, _result = publication_change(
                name, current["publications"], d.publications, True, d.copy_data
            )
            refresh_wanted = pub_statement is not None
        if d.refresh and pub_statement is None:
            refresh_wanted = True
        refresh_step = None
        if refresh_wanted:
            copying = d.copy_data is not False
            if copying and current.get("two_phase_state") == "enabled":
                self.m.fail(
                    f"subscription {self.display} has two_phase enabled: PostgreSQL refreshes its tables only with "
                    "copy_data: false (or re-create it with recreate: true)"
                )
            statement = pub_statement if pub_statement is not None else refresh_sql(name, d.copy_data)
            refresh_step = Step(statement, autocommit=True, kind="refresh")
            if cur_enabled and not conn_keys:
                steps_pre.append(refresh_step)
            elif tgt_enabled:
                steps_post.append(refresh_step)
            elif pub_statement is not None:
                quiet, _result = publication_change(name, current["publications"], d.publications, False, None)
                steps_main.append(Step(quiet))
                self.warnings.append(
                    f"subscription {self.display} stays disabled, so its publications were changed without a refresh; "
                    "enable it and run with refresh: true to synchronize the tables of the new publications"
                )
                refresh_step = None
            else:
                self.m.fail("refresh: true needs an enabled subscription (enabled: true)")
        self.refresh_only = refresh_step is not None and pub_statement is None

        # PostgreSQL changes failover and two_phase only while the subscription is disabled: an enabled one is
        # disabled (its workers stopped) first and, unless enabled: false is wanted, enabled again at the end.
        disable_early = cur_enabled and any(k in changes for k in DISABLED_ONLY_OPTIONS)
        self.temporarily_disabled = disable_early and tgt_enabled
        if disable_early:
            steps_slot.append(Step(alter_sql(name, "DISABLE"), kind="disable"))
            steps_slot.append(Step(None, kind="wait_stopped"))
        if slot_changes:
            steps_slot.append(
                Step(alter_sql(name, "SET ({})", options_sql(slot_changes)), autocommit=True, kind="slot")
            )

        if cur_enabled and not tgt_enabled and not disable_early:
            steps_main.append(Step(alter_sql(name, "DISABLE")))
        if conn_keys:
            steps_main.append(Step(alter_sql(name, "CONNECTION {}", sql.Literal(d.conn_text))))
        if target["owner"] != current["owner"]:
            steps_main.append(Step(owner_sql(name, target["owner"])))
        if main_changes:
            steps_main.append(Step(alter_sql(name, "SET ({})", options_sql(main_changes))))
        if d.skip_lsn is not None and self.skip_needed(current):
            steps_main.append(Step(alter_sql(name, "SKIP (lsn = {})", sql.Literal(d.skip_lsn))))
            target["skip_lsn"] = d.skip_lsn
        if tgt_enabled and (not cur_enabled or self.temporarily_disabled):
            steps_main.append(Step(alter_sql(name, "ENABLE")))
        return steps_pre + steps_slot + steps_main + steps_post

    def skip_needed(self, current):
        """False when ``skip_lsn`` is already set, or behind the origin (that transaction is done)."""
        wanted = parse_lsn(self.d.skip_lsn)
        if current.get("skip_lsn") is not None and parse_lsn(current["skip_lsn"]) == wanted:
            return False
        rows = self.try_query(ORIGIN_LSN_QUERY, [f"pg_{current['oid']}"])
        if rows and rows[0]["lsn"] not in (None, "0/0"):
            if wanted < parse_lsn(rows[0]["lsn"]):
                return False
        return True

    def plan_recreate(self, current, target, problems):
        d = self.d
        conninfo = d.conn_text if d.conn_text is not None else current.get("_conninfo")
        if conninfo is None:
            self.m.fail(
                f"cannot re-create subscription {self.display}: its connection cannot be read; "
                "give publisher or conninfo"
            )
        if d.skip_lsn is not None:
            self.m.fail("skip_lsn cannot be used together with a re-creation of the subscription")
        new = copy.deepcopy(target)
        new["_conninfo"] = conninfo
        if d.publications is not None:
            new["publications"] = list(d.publications)
        given = set(d.options) | {"enabled"}
        options = self.create_options(new, given)
        copying = options.get("copy_data", True) and options.get("create_slot", True) is not False
        reasons = "; ".join(f"{k}: {r}" for k, r in problems)
        warning = (
            f"subscription {self.display} is dropped and re-created ({reasons}); its replication slot is re-created"
        )
        if copying:
            warning += (
                " and every table is copied again (rows already on the subscriber cause duplicate-key errors unless "
                "the tables are emptied first, or use copy_data: false)"
            )
        else:
            warning += "; changes made on the publisher before the new slot exists are not replicated"
        self.warnings.append(warning)
        new["oid"] = None
        new["two_phase_state"] = "pending" if new.get("two_phase") else new.get("two_phase_state")
        if "two_phase" in new and not new["two_phase"]:
            new["two_phase_state"] = "disabled"
        if self.major >= SUBSCRIPTION_STATS_MAJOR:
            new["skip_lsn"] = None
        steps = [
            Step(sql.SQL("DROP SUBSCRIPTION {}").format(ident(d.name)), autocommit=True, kind="drop"),
            Step(create_sql(d.name, conninfo, new["publications"], options), autocommit=True, kind="create"),
        ]
        if new["owner"] != self.session["current_user"]:
            steps.append(Step(owner_sql(d.name, new["owner"])))
        return steps, new

    # -- absent ---------------------------------------------------------------------------------

    def drop(self, current):
        """Drop the subscription, with its slot when the publisher answers; fails the module otherwise."""
        m, name = self.m, self.d.name
        statement = sql.SQL("DROP SUBSCRIPTION {}").format(ident(name))
        if m.check_mode:
            m.execute(statement)
            return
        if current["slot_name"] is None:
            self.execute(Step(statement))
            return
        timeout = self.drop_timeout()
        if timeout:
            m.conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(f"{timeout}s")))
        try:
            m.execute(statement, autocommit=True, raise_errors=True)
        except psycopg.Error as exc:
            primary = (exc.diag.message_primary if exc.diag is not None else None) or str(exc)
            if exc.sqlstate == "57014":
                reason = f"the publisher did not answer within {timeout} s"
            elif primary.startswith("could not drop replication slot") and "does not exist" in primary:
                reason = None  # reachable, and the slot is gone already
            elif (exc.sqlstate or "").startswith("08") and not primary.startswith("could not drop replication slot"):
                reason = format_db_error(exc, ())
            else:
                self.fail(format_db_error(exc, (), f"executing {m.queries[-1]} failed"), sqlstate=exc.sqlstate)
            self.drop_detached(current, reason)
        finally:
            if timeout and m.conn is not None:
                m.conn.execute("RESET statement_timeout")

    def drop_timeout(self):
        if self.d.publisher_connect_timeout:
            return int(self.d.publisher_connect_timeout)
        return int(self.m.params.get("connect_timeout") or 0)

    def drop_detached(self, current, reason):
        """The publisher is unreachable: disable, detach from the slot and drop; warn about the slot(s) left."""
        m, name = self.m, self.d.name
        pending = self.run_query(SYNCING_REL_IDS_QUERY, [current["oid"]])
        m.queries.pop()  # the failed DROP changed nothing
        self.execute(Step(alter_sql(name, "DISABLE")))
        self.execute(Step(alter_sql(name, "SET (slot_name = NONE)")))
        self.execute(Step(sql.SQL("DROP SUBSCRIPTION {}").format(ident(name))))
        self.commit()
        slot = current["slot_name"]
        if reason is None:
            self.warnings.append(
                f"the replication slot {slot!r} of subscription {self.display} did not exist on the publisher any "
                "more; the subscription was detached from it and dropped"
            )
            return
        warning = (
            f"the publisher of subscription {self.display} could not be reached ({reason}); the subscription was "
            f"dropped without its replication slot: the slot {slot!r} is left on the publisher and retains WAL "
            f"there until it is dropped - run SELECT pg_drop_replication_slot('{slot}') on the publisher"
        )
        if pending and self.major >= FINISHED_COPY_MAJOR:
            sysid = self.try_query("SELECT system_identifier::text AS id FROM pg_catalog.pg_control_system()")
            sysid = sysid[0]["id"] if sysid else "<system identifier of the subscriber>"
            names = ", ".join(f"pg_{current['oid']}_sync_{r['relid']}_{sysid}" for r in pending)
            warning += f"; table synchronization slots may be left too: {names}"
        self.warnings.append(warning)

    # -- run ------------------------------------------------------------------------------------

    def prepare(self):
        """Everything that can fail before a write: version gates, the current state, the plan of statements.

        Returns the plan :meth:`apply` carries out: ``current`` (state or ``None``), ``target``
        (``None`` for state=absent), ``steps``, ``created`` and ``rels_before`` (the table list a
        refresh alone is compared with).
        """
        m, d = self.m, self.d
        self.check_versions()
        if self.session is None:
            self.session = m.query_one(SESSION_QUERY)
        current = self.read_current()
        planned = {"current": current, "target": None, "steps": [], "created": False, "rels_before": None}
        if d.state == "absent":
            return planned
        owner_superuser = self.check_owner()

        if current is None:
            target = self.target_state(None)
            steps = self.plan_create(target)
            created = True
        else:
            target = self.target_state(current)
            problems = self.not_alterable(current, target)
            created = False
            if problems and not d.recreate:
                details = "; ".join(f"{k}: {r}" for k, r in problems)
                m.fail(
                    f"subscription {self.display} cannot be changed in place - {details}. Use recreate: true to drop "
                    "and re-create it (its data is copied again)"
                )
            if problems:
                steps, target = self.plan_recreate(current, target, problems)
                created = True
            else:
                steps = self.plan_alter(current, target)

        self.check_owner_password(target, owner_superuser)
        if current is not None and self.refresh_only:
            planned["rels_before"] = self.rel_set(current["oid"])
        if d.wait_for_sync and not target["enabled"]:
            m.fail(f"wait_for_sync: true needs an enabled subscription, but {self.display} is disabled")
        planned.update(target=target, steps=steps, created=created)
        return planned

    def apply(self, planned):
        """Carry out a :meth:`prepare` and commit; the result ``{name, changed, subscription, diff[, sync]}``.

        ``diff`` is ``(before, after)``; ``sync`` is there when ``wait_for_sync`` waited.
        """
        conn = self.m.conn
        conn.add_notice_handler(self.on_notice)
        try:
            result = self.apply_plan(planned)
        finally:
            conn.remove_notice_handler(self.on_notice)
        for warning in self.warnings:
            self.m.warn(warning)
        return result

    def apply_plan(self, planned):
        m, d = self.m, self.d
        current, target, steps = planned["current"], planned["target"], planned["steps"]
        before = diff_state(current)
        if d.state == "absent":
            if current is not None:
                self.drop(current)
                self.commit()
            return {"name": d.name, "changed": current is not None, "subscription": {}, "diff": (before, {})}

        for step in steps:
            if step.kind == "wait_stopped":
                # Set first: the wait commits the DISABLE and can then time out.
                self.reenable_pending = self.temporarily_disabled and not m.check_mode
                self.wait_workers_stopped(current["oid"])
            elif step.kind == "slot":
                self.run_slot_step(step)
            else:
                self.execute(step)
        self.commit()
        self.reenable_pending = False

        changed = bool(steps)
        if m.check_mode:
            final = target
            final_tables = self.tables(current) if current is not None and not planned["created"] else []
        else:
            final = self.read()
            if final is None:
                self.fail(f"subscription {self.display} disappeared while it was changed")
            if planned["rels_before"] is not None and len(steps) == 1:
                changed = self.rel_set(final["oid"]) != planned["rels_before"]
            final_tables = None

        result = {"name": d.name, "changed": changed}
        if self.temporarily_disabled:
            result["temporarily_disabled"] = True
        if d.wait_for_sync and not m.check_mode:
            outcome = wait_for_sync(self.run_query, final["oid"], self.major, d.sync_timeout)
            result["sync"] = outcome.as_dict()
            if not outcome.synced:
                evidence = "; ".join(outcome.evidence())
                self.fail(
                    f"subscription {self.display} is not in sync: {outcome.reason}. {evidence}. The subscriber's "
                    "server log has the errors",
                    changed=changed,
                    sync=outcome.as_dict(),
                    subscription=public_state(final, self.tables(final)),
                )
        if final_tables is None:
            final_tables = self.tables(final)
        result["subscription"] = public_state(final, final_tables)
        result["diff"] = (before, diff_state(final))
        return result

    def run(self):
        """The single form: exit with ``changed``, ``queries``, ``diff``, ``subscription`` (and ``sync``)."""
        result = self.apply(self.prepare())
        del result["name"]
        self.m.exit(**result)


def add_secrets(m, params):
    """Hide the publisher's password and a raw conninfo before anything can fail."""
    m.add_secret((params.get("publisher") or {}).get("password"), params.get("conninfo"))


def item_desired(item):
    # Checked here, not by Ansible, so that the message names the item.
    if item.get("publisher") is not None and item.get("conninfo") is not None:
        raise OptionError("publisher and conninfo are mutually exclusive: give one of them")
    return Desired(item)


def run_subscription_list(m, items):
    """The ``subscription`` module's ``subscriptions`` list: every item validated and planned before the first
    change, applied one by one (each committed: statements with a slot cannot run in a transaction block)."""
    for item in items:
        add_secrets(m, item)
    desired = check_items(m, "subscriptions", items, item_desired, key=lambda d: d.name)
    for one in desired:
        m.add_secret(*one.secrets())
    m.connect()
    m.require_versions("subscription module", [])
    catalog = read_subscriptions(m, [one.name for one in desired])
    subscriptions = {item["name"]: SubscriptionModule(m, desired[i], catalog) for i, item in enumerate(items)}

    def plan(item):
        subscription = subscriptions[item["name"]]
        return subscription, subscription.prepare()

    def apply(planned):
        subscription, prepared = planned
        return subscription.apply(prepared)

    # Statements with a slot cannot run in a transaction block: every item is committed when it is applied.
    run_items(m, "subscriptions", items, plan, apply, transactional=False)
