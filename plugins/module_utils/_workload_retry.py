# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Surviving a server restart: which errors are a lost connection, and the reconnect backoff.

Shared by the ``load_generator`` (hum, pulse) and ``pgbench`` workloads. A *connection loss* is
what a publisher restart, ``pg_terminate_backend`` or a network cut produce: SQLSTATE class 08
(connection exception), ``57P01`` (admin shutdown: a fast/smart shutdown or
``pg_terminate_backend``), ``57P02`` (crash shutdown: another backend crashed or an immediate
shutdown), ``57P03`` (cannot connect now: starting up, shutting down, in recovery), or a libpq
error without SQLSTATE on a connection that broke (``server closed the connection
unexpectedly``, ``Connection refused``). Anything else - a constraint violation, a syntax error, a
wrong password, a missing database - is not retried: it would fail again on every attempt.

:class:`Backoff` waits 0.1 s, 0.2 s, 0.4 s ... capped at ``max_delay`` between attempts and gives
up once one outage has lasted ``give_up_after`` seconds.
"""

from __future__ import annotations

import re

CONNECTION_LOSS_SQLSTATES = ("57P01", "57P02", "57P03")
"""admin_shutdown, crash_shutdown, cannot_connect_now (plus every SQLSTATE of class 08)."""

INITIAL_DELAY = 0.1

# libpq / server texts that mean "the server went away or is not accepting connections yet".
# Matched against a connection attempt's error (psycopg gives no SQLSTATE for those) and against
# pgbench's error output.
_TRANSIENT_TEXTS = (
    "terminating connection due to administrator command",
    "terminating connection because of crash of another server process",
    "terminating connection due to unexpected postmaster exit",
    "terminating connection due to immediate shutdown",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
    "server closed the connection unexpectedly",
    "connection refused",
    "connection reset by peer",
    "could not receive data from server",
    "could not send data to server",
    "connection to server was lost",
    "no connection to the server",
    "perhaps the backend died while processing",
    "ssl syscall error",
    "timeout expired",
    "no route to host",
    "network is unreachable",
    "consuming input failed",
    "sending query failed",
)
_TRANSIENT = re.compile("|".join(re.escape(text) for text in _TRANSIENT_TEXTS), re.I)
# A FATAL that is not one of the above (wrong password, unknown database or role, pg_hba refusal).
_FATAL = re.compile(r"\bFATAL:\s+(.*)")


def is_connection_loss(exc, conn=None):
    """True when ``exc`` (a psycopg error raised by a statement on ``conn``) means the session is gone.

    Server-reported errors count only with a connection-loss SQLSTATE; an error without SQLSTATE
    counts when it is an ``OperationalError`` (libpq lost the connection) or ``conn`` is broken.
    """
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith("08") or sqlstate in CONNECTION_LOSS_SQLSTATES
    if conn is not None and (getattr(conn, "broken", False) or getattr(conn, "closed", False)):
        return True
    return any(cls.__name__ == "OperationalError" for cls in type(exc).__mro__)


def server_answered(exc):
    """True when the server reported the error (a SQLSTATE): PostgreSQL aborted the statement.

    Without a SQLSTATE the connection broke without an answer, so whether the statement committed
    is unknown.
    """
    return bool(getattr(exc, "sqlstate", None))


def transient_connect_error(message):
    """True when a failed connection attempt (its message) is worth retrying.

    Network-level failures (refused, reset, timeout) and the server's own "starting up / shutting
    down / in recovery" refusals are; any other ``FATAL`` (password authentication failed,
    database or role does not exist, no pg_hba entry) is not.
    """
    text = str(message)
    if _TRANSIENT.search(text):
        return True
    return not _FATAL.search(text)


def lost_connection_text(text):
    """True when an external client's error output (pgbench) shows the server went away."""
    return bool(_TRANSIENT.search(text or ""))


def one_line(text, limit=300):
    """An error message on one line, at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def attempts(count):
    """``1 attempt``, ``3 attempts``."""
    return f"{count} attempt" + ("" if count == 1 else "s")


def connect_reason(exc, limit=200):
    """The reason of a failed connection attempt without the ``Unable to connect ... failed:`` preamble."""
    text = one_line(exc, 10_000)
    reason = text.rsplit(" failed: ", 1)[-1]
    return one_line(reason, limit)


class OutageTooLong(Exception):
    """The connection did not come back within ``give_up_after`` seconds; ``str()`` says so."""


class Backoff:
    """Capped exponential backoff over one outage.

    ``delays()`` yields the wait before each attempt: ``initial``, doubling, at most ``max_delay``.
    ``give_up_after`` (seconds since the outage started) bounds the outage; ``0`` means never
    reconnect (the first loss is final).
    """

    def __init__(self, max_delay=5.0, give_up_after=300.0, initial=INITIAL_DELAY):
        if max_delay is None or max_delay <= 0:
            raise ValueError("reconnect_max_seconds: must be greater than 0 seconds")
        if give_up_after is None or give_up_after < 0:
            raise ValueError("outage_max_seconds: must be 0 (never reconnect) or more seconds")
        self.max_delay = float(max_delay)
        self.give_up_after = float(give_up_after)
        self.initial = min(float(initial), self.max_delay)

    @property
    def enabled(self):
        return self.give_up_after > 0

    def delay(self, attempt):
        """Seconds to wait before attempt ``attempt`` (1-based)."""
        return min(self.max_delay, self.initial * (2 ** max(0, attempt - 1)))

    def next_wait(self, attempt, outage_seconds):
        """The wait before attempt ``attempt``, or ``None`` when the outage bound is reached.

        The last wait is shortened so the final attempt happens at the bound, not after it.
        """
        left = self.give_up_after - outage_seconds
        if left <= 0:
            return None
        return min(self.delay(attempt), left)
