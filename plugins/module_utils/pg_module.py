# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``PgModule``: the base every module of the collection is built on.

It wraps ``AnsibleModule`` and gives a module, in a few calls:

* the connection options (merged into the argument spec) and a connection;
* the server's version and :meth:`PgModule.require_version` for version gating;
* :meth:`PgModule.query` for reads and :meth:`PgModule.execute` for writes. Writes are
  recorded (rendered SQL, secrets redacted) in ``queries``, skipped in check mode, and
  all run in ONE transaction that is committed by :meth:`PgModule.exit` and rolled
  back by :meth:`PgModule.fail`. Statements that PostgreSQL refuses inside a
  transaction block (``ALTER SYSTEM``, ``CREATE SUBSCRIPTION ... create_slot``,
  ``DROP SUBSCRIPTION`` with a slot, ...) use ``execute(..., autocommit=True)``;
* uniform errors (``msg`` with SQLSTATE, PostgreSQL's message, detail and hint) and
  uniform results (``changed``, ``queries``, ``diff`` with ``--diff``, object state),
  with every secret redacted.

Minimal module::

    from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule
    from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import sql

    def main():
        m = PgModule(argument_spec=dict(name=dict(type='str', required=True)))
        m.connect()
        before = m.query_one("SELECT ... WHERE name = %s", [m.params['name']])
        if before is None:
            m.execute(sql.SQL("CREATE ... {}").format(sql.Identifier(m.params['name'])))
        after = ...
        m.exit(changed=before is None, diff=(before, after), thing=after)
"""

from __future__ import annotations

import contextlib

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import require_supported
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    HAS_PSYCOPG,
    PSYCOPG_IMPORT_ERROR,
    PSYCOPG_REQUIREMENT,
    PgConnectionError,
    connect,
    connection_argument_spec,
    format_db_error,
    psycopg,
    psycopg_version_ok,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.diff import make_diff
from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import redact, redact_data


def require_psycopg(module):
    """Fail ``module`` (an ``AnsibleModule``) unless a psycopg 3 the collection supports is importable."""
    if not HAS_PSYCOPG:
        module.fail_json(msg=missing_required_lib(PSYCOPG_REQUIREMENT), exception=PSYCOPG_IMPORT_ERROR)
    if not psycopg_version_ok():
        module.fail_json(msg=f"{PSYCOPG_REQUIREMENT} is required, found psycopg {psycopg.__version__}")


def multi_server_module(argument_spec, check_psycopg=True):
    """An ``AnsibleModule`` for a module that talks to several servers (``publisher`` and ``nodes``).

    Those options are free-form dicts (the experiment runner passes its node list as it is), so
    Ansible cannot mask their passwords from the argument spec: every ``login_password`` given in
    ``publisher`` or any of ``nodes`` is added to ``no_log_values`` here, before anything can fail.
    Returns ``(module, secrets)``; ``secrets`` is the list to pass to ``redact``/``format_db_error``.
    ``check_psycopg=False`` leaves :func:`require_psycopg` to the caller (a module that can answer
    check mode without a connection).
    """
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    targets = [module.params.get("publisher") or {}, *(module.params.get("nodes") or [])]
    secrets = [str(t["login_password"]) for t in targets if isinstance(t, dict) and t.get("login_password")]
    for secret in secrets:
        module.no_log_values.add(secret)
    if check_psycopg:
        require_psycopg(module)
    return module, secrets


def server_major(server_version_num):
    """Major version from ``server_version_num``: ``150004`` -> ``15``, ``170002`` -> ``17``."""
    return server_version_num // 10000


class PgModule:
    """An ``AnsibleModule`` plus a PostgreSQL session, query log, transaction and result shape.

    ``argument_spec`` holds the module's own options; the connection options are added.
    Other keyword arguments go to ``AnsibleModule`` unchanged (``mutually_exclusive``,
    ``required_if``, ...). Check mode is supported by default.

    Attributes: ``module`` (the AnsibleModule), ``params``, ``check_mode``,
    ``diff_mode``, ``conn`` (psycopg connection after :meth:`connect`), ``queries``
    (list of rendered, redacted write statements).
    """

    def __init__(self, argument_spec=None, supports_check_mode=True, **kwargs):
        spec = connection_argument_spec()
        spec.update(argument_spec or {})
        self.module = AnsibleModule(argument_spec=spec, supports_check_mode=supports_check_mode, **kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self.diff_mode = self.module._diff
        self.queries = []
        self.conn = None
        self._secrets = set()
        self._server_version_num = None
        self._fail_label = None
        self._fail_extra = {}
        self._transaction_begun = False
        self.add_secret(self.params.get("login_password"))
        require_psycopg(self.module)

    # -- secrets -------------------------------------------------------------------------

    def add_secret(self, *values):
        """Register values (passwords, conninfo strings ...) to redact from all output. ``None``/'' ignored."""
        for value in values:
            if value not in (None, ""):
                self._secrets.add(str(value))

    def redact(self, data):
        """Redact registered secrets and password patterns from a string or nested data."""
        return redact_data(data, self._secrets)

    # -- connection and version ----------------------------------------------------------

    def connect(self, raise_errors=False):
        """Connect (once) with the connection options and return the psycopg connection.

        The session is in autocommit mode; writes made with :meth:`execute` open the
        module's single transaction on demand. Fails the module with a helpful message
        when the server is unreachable; with ``raise_errors=True`` raises
        :class:`~ansible_collections.inventium.logical_replication.plugins.module_utils.connection.PgConnectionError`
        instead (its message is complete and redacted), for a module that reports an
        unreachable server rather than failing.
        """
        if self.conn is None:
            try:
                self.conn = connect(self.params, autocommit=True)
            except PgConnectionError as exc:
                if raise_errors:
                    raise PgConnectionError(self.redact(str(exc))) from None
                self.fail(str(exc))
            self._server_version_num = self.conn.info.server_version
        return self.conn

    @property
    def connection_lost(self):
        """True when the module had a connection and the server closed it (or it broke)."""
        return self.conn is not None and (self.conn.closed or self.conn.broken)

    @property
    def server_version_num(self):
        """``server_version_num`` of the server, e.g. ``170002`` (connects if needed)."""
        self.connect()
        return self._server_version_num

    @property
    def server_major(self):
        """Server major version, e.g. ``17`` (connects if needed)."""
        return server_major(self.server_version_num)

    def supports(self, min_major):
        """True when the server's major version is at least ``min_major``."""
        return self.server_major >= min_major

    def require_versions(self, what, problems):
        """Fail unless ``what`` supports the server and it has every ``(option, min_major[, reason])`` problem."""
        unsupported = require_supported(self.server_major, what)
        if unsupported:
            self.fail(unsupported)
        for problem in problems:
            self.require_version(*problem)

    def require_version(self, option, min_major, reason=None):
        """Fail with ``option X requires PostgreSQL >= N (server is M)`` unless the server is new enough."""
        if not self.supports(min_major):
            msg = f"option {option} requires PostgreSQL >= {min_major} (server is {self.server_major})"
            if reason:
                msg += f": {reason}"
            self.fail(msg)

    # -- SQL -----------------------------------------------------------------------------

    def render(self, statement, params=None):
        """Render a statement (``str`` or ``psycopg.sql.Composable``) with its parameters as SQL text, redacted."""
        self.connect()
        if not isinstance(statement, str):
            statement = statement.as_string(self.conn)
        if params is not None:
            statement = psycopg.ClientCursor(self.conn).mogrify(statement, params)
        return redact(statement, self._secrets)

    def query(self, statement, params=None, action=None):
        """Run a read-only statement and return its rows as a list of dicts.

        Reads run in check mode too, are not recorded in ``queries`` and see the
        module's own uncommitted writes. A database error fails the module.
        """
        self.connect()
        try:
            with self.conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description is not None else []
        except psycopg.Error as exc:
            self.fail(format_db_error(exc, self._secrets, action or "query failed"), sqlstate=exc.sqlstate)

    def query_one(self, statement, params=None, action=None):
        """Like :meth:`query` but return the first row (a dict) or ``None``."""
        rows = self.query(statement, params, action=action)
        return rows[0] if rows else None

    @property
    def in_transaction(self):
        """True while the module's write transaction is open on a live connection.

        A lost connection has no transaction any more (libpq reports its status as UNKNOWN):
        there is nothing to commit or roll back on it; :meth:`commit` tells a lost write apart.
        """
        if self.conn is None or self.conn.closed:
            return False
        status = self.conn.info.transaction_status
        return status in (
            psycopg.pq.TransactionStatus.ACTIVE,
            psycopg.pq.TransactionStatus.INTRANS,
            psycopg.pq.TransactionStatus.INERROR,
        )

    def execute(self, statement, params=None, autocommit=False, raise_errors=False):
        """Record and run a write statement; returns its rows (list of dicts), ``None`` in check mode.

        The rendered, redacted SQL is appended to ``queries`` in every mode. In check
        mode nothing is executed. Otherwise the statement joins the module's single
        transaction (opened on the first write). With ``autocommit=True`` it runs
        outside any transaction block, for statements PostgreSQL does not allow in
        one; an open transaction is committed first so statements keep their order
        (so put autocommit statements first when the rest must stay atomic).
        On a database error the open transaction is rolled back and the module fails;
        with ``raise_errors=True`` the ``psycopg.Error`` is raised instead (for callers
        that compensate, e.g. undo earlier autocommit statements, before failing).
        """
        self.connect()
        self.queries.append(self.render(statement, params))
        if self.check_mode:
            return None
        try:
            if autocommit:
                if self.in_transaction:
                    self.conn.execute("COMMIT")
                self._transaction_begun = False
            elif not self.in_transaction:
                self.conn.execute("BEGIN")
                self._transaction_begun = True
            with self.conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description is not None else []
        except psycopg.Error as exc:
            if raise_errors:
                self.rollback()
                raise
            self.fail(
                format_db_error(exc, self._secrets, f"executing {self.queries[-1]} failed"), sqlstate=exc.sqlstate
            )

    def commit(self):
        """Commit the module's transaction now (normally :meth:`exit` does this).

        Fails the module when the transaction cannot be committed, also when the server closed
        the connection after the module's writes began (they were not applied). A read-only
        module whose connection was lost has nothing to commit and does not fail here.
        """
        begun, self._transaction_begun = self._transaction_begun, False
        if self.in_transaction:
            try:
                self.conn.execute("COMMIT")
            except psycopg.Error as exc:
                self.fail(format_db_error(exc, self._secrets, "commit failed"), sqlstate=exc.sqlstate)
        elif begun and self.connection_lost:
            self.fail(
                "commit failed: the connection to the server was lost before the transaction was committed, "
                "so its statements were not applied"
            )

    def rollback(self):
        """Roll back the module's transaction if one is open (errors are ignored)."""
        self._transaction_begun = False
        if self.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except psycopg.Error:
                pass

    def close(self):
        """Roll back anything uncommitted and close the connection."""
        if self.conn is not None:
            self.rollback()
            try:
                self.conn.close()
            except psycopg.Error:
                pass
            self.conn = None

    # -- results -------------------------------------------------------------------------

    def warn(self, message):
        """Emit an Ansible warning (redacted)."""
        self.module.warn(self.redact(message))

    @contextlib.contextmanager
    def failing_as(self, label, **result):
        """While the block runs, :meth:`fail` prefixes ``msg`` with ``label: `` and adds ``result``'s keys.

        For modules that handle a list of objects: whatever fails (option check, version gate,
        database error) names the list item, e.g. ``slots[2] (name=foo): ...``. A ``changed`` in
        ``result`` (the items applied before this one changed something) is or-ed with the
        failure's own ``changed``.
        """
        saved = self._fail_label, self._fail_extra
        self._fail_label, self._fail_extra = label, result
        try:
            yield
        finally:
            self._fail_label, self._fail_extra = saved

    def fail(self, msg, **result):
        """Roll back, close, and fail the module with a redacted ``msg`` plus ``queries`` and extra keys."""
        self.close()
        if self._fail_label:
            msg = f"{self._fail_label}: {msg}"
            for key, value in self._fail_extra.items():
                if key == "changed":
                    # This item may have changed nothing, but what was applied before it stays changed.
                    result[key] = bool(result.get(key)) or bool(value)
                else:
                    result.setdefault(key, value)
        result.setdefault("queries", self.queries)
        self.module.fail_json(msg=self.redact(msg), **self.redact(result))

    def exit(self, changed, diff=None, **result):
        """Commit, close and exit with ``changed``, ``queries``, ``diff`` (when ``--diff``) and ``result``.

        ``diff`` is ``(before, after)`` (dicts, ``None`` = absent) or a ready dict from
        :func:`~ansible_collections.inventium.logical_replication.plugins.module_utils.diff.make_diff`.
        """
        self.commit()
        self.close()
        result["changed"] = bool(changed)
        result.setdefault("queries", self.queries)
        if self.diff_mode and diff is not None:
            if isinstance(diff, tuple):
                diff = make_diff(*diff)
            result["diff"] = diff
        self.module.exit_json(**self.redact(result))
