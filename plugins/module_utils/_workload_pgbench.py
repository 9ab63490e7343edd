# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""pgbench: finding the binary, building its command lines and environment, parsing its report.

The ``pgbench`` module's logic (:func:`execute` runs it; :func:`result` is its return fields).
Initialisation is ``pgbench -i -I gv`` only: ``g`` truncates
and refills the four tables (client side COPY), ``v`` vacuums them. The steps ``d`` (drop) and
``t`` (create) are never used because the tables are published (bench_pub) and created with
primary keys by ``roles/publisher/files/schema/pgbench.sql``, so ``p`` is not needed either.
Runs always pass ``-n``: without it pgbench vacuums the tables and TRUNCATEs pgbench_history
before each run, which the subscribers would replicate.

Restarts (:func:`run_segments`): when pgbench exits non-zero and its output shows that the
server went away (``57P01 terminating connection due to administrator command``, ``Connection
refused``, ``server closed the connection unexpectedly`` ...; see :mod:`._workload_retry`), the
module waits for the server with capped exponential backoff (probing with a connection of its
own) and runs pgbench again for the rest of the duration. :func:`combine` sums the segments:
transactions, failed transactions, and the clients pgbench reports as aborted (each had at most
one transaction in flight whose outcome is unknown). Any other failure is final, as before.
"""

from __future__ import annotations

import glob
import math
import os
import re
import shutil
import tempfile
import time

from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_markers import Markers
from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_retry import (
    Backoff,
    OutageTooLong,
    attempts,
    connect_reason,
    lost_connection_text,
    one_line,
    transient_connect_error,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    PgConnectionError,
    connect,
)

BUILTIN_SCRIPTS = ("tpcb-like", "simple-update", "select-only")
READ_ONLY_BUILTINS = ("select-only",)
ACCOUNTS_PER_SCALE = 100000
MAX_INT_SCALE = 19999  # pgbench switches aid to bigint from scale 20000; the lab schema uses integer

_WRITES = re.compile(r"\b(insert|update|delete|merge|truncate|copy|create|drop|alter)\b", re.I)
_NUMBER = r"([-+]?\d+(?:\.\d+)?)"
_SUMMARY = {
    "transaction_type": re.compile(r"^transaction type:\s*(.+)$", re.M),
    "scaling_factor": re.compile(r"^scaling factor:\s*(\d+)$", re.M),
    "query_mode": re.compile(r"^query mode:\s*(\S+)$", re.M),
    "clients": re.compile(r"^number of clients:\s*(\d+)$", re.M),
    "threads": re.compile(r"^number of threads:\s*(\d+)$", re.M),
    "duration": re.compile(r"^duration:\s*(\d+) s$", re.M),
    "transactions": re.compile(r"^number of transactions actually processed:\s*(\d+)", re.M),
    "failed_transactions": re.compile(r"^number of failed transactions:\s*(\d+)", re.M),
    "skipped_transactions": re.compile(r"^number of transactions skipped:\s*(\d+)", re.M),
    "late_transactions": re.compile(r"^number of transactions above the [\d.]+ ms latency limit:\s*(\d+)", re.M),
    "latency_average_ms": re.compile(r"^latency average\s*=\s*" + _NUMBER + " ms", re.M),
    "latency_stddev_ms": re.compile(r"^latency stddev\s*=\s*" + _NUMBER + " ms", re.M),
    "initial_connection_time_ms": re.compile(r"^initial connection time\s*=\s*" + _NUMBER + " ms", re.M),
    "schedule_lag_average_ms": re.compile(r"^rate limit schedule lag: avg\s*" + _NUMBER, re.M),
    "schedule_lag_max_ms": re.compile(r"^rate limit schedule lag: avg\s*[-+\d.]+\s*\(max\s*" + _NUMBER, re.M),
}
_TPS = re.compile(r"^tps\s*=\s*" + _NUMBER + r"\s*\((.*)\)$", re.M)
_PROGRESS = re.compile(
    r"^progress:\s*"
    + _NUMBER
    + r" s,\s*"
    + _NUMBER
    + r" tps,\s*lat\s*"
    + _NUMBER
    + r" ms stddev\s*([-+\d.]+|NaN)(.*)$",
    re.M,
)
_PROGRESS_LAG = re.compile(r"lag\s*" + _NUMBER + " ms")
_PROGRESS_FAILED = re.compile(r"(\d+) failed")
_INTEGERS = (
    "scaling_factor",
    "clients",
    "threads",
    "duration",
    "transactions",
    "failed_transactions",
    "skipped_transactions",
    "late_transactions",
)


_ABORTED = re.compile(r"\bclient \d+ (?:script \d+ )?aborted\b")


class PgbenchError(Exception):
    """pgbench cannot be found or run; ``str()`` is the message for the user."""


class PgbenchFailed(Exception):
    """pgbench exited non-zero for a reason other than a lost connection (or reconnecting is off)."""

    def __init__(self, rc, stdout, stderr):
        super().__init__(f"pgbench failed (rc={rc}): {(stderr or stdout).strip()[-2000:]}")
        self.rc, self.stdout, self.stderr = rc, stdout, stderr


def find_pgbench(explicit=None):
    """The pgbench executable: ``explicit``, else ``pgbench`` on PATH, else the newest
    ``/usr/lib/postgresql/<major>/bin/pgbench`` (Debian/Ubuntu keep it off PATH)."""
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise PgbenchError(f"pgbench_path: {explicit} is not an executable file")
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = glob.glob("/usr/lib/postgresql/*/bin/pgbench")
    candidates.sort(key=lambda path: int(re.search(r"/(\d+)/bin/", path).group(1)))
    if candidates:
        return candidates[-1]
    raise PgbenchError(
        "pgbench was not found (not on PATH nor in /usr/lib/postgresql/*/bin); install the distribution's "
        "PostgreSQL package that ships it (Debian: postgresql-<major> or postgresql-contrib) or set pgbench_path"
    )


def environment(params, password=None):
    """libpq environment for pgbench from the modules' connection options (password via PGPASSWORD)."""
    env = {
        "PGHOST": params.get("login_unix_socket") or params.get("login_host") or None,
        "PGPORT": str(params["login_port"]) if params.get("login_port") else None,
        "PGUSER": params.get("login_user"),
        "PGDATABASE": params.get("login_db"),
        "PGSSLMODE": params.get("ssl_mode"),
        "PGSSLROOTCERT": params.get("ssl_rootcert"),
        "PGSSLCERT": params.get("ssl_cert"),
        "PGSSLKEY": params.get("ssl_key"),
        "PGCONNECT_TIMEOUT": str(params["connect_timeout"]) if params.get("connect_timeout") else None,
        "PGAPPNAME": "pgbench (inventium.logical_replication workload)",
        "PGPASSWORD": password,
    }
    return {key: value for key, value in env.items() if value not in (None, "")}


def init_argv(pgbench, scale):
    if not 1 <= int(scale) <= MAX_INT_SCALE:
        raise PgbenchError(f"scale: {scale} is outside 1..{MAX_INT_SCALE} (the lab's pgbench schema uses integer ids)")
    return [pgbench, "--initialize", "--init-steps=gv", f"--scale={int(scale)}", "--quiet"]


def run_argv(
    pgbench, duration, clients=1, jobs=1, rate=None, builtin=None, script_file=None, progress=5, protocol="prepared"
):
    """The command line of a timed run (``-T``), optionally rate limited (``-R``)."""
    if int(duration) < 1:
        raise PgbenchError("duration must be at least 1 second")
    argv = [
        pgbench,
        "--no-vacuum",
        f"--time={int(duration)}",
        f"--client={int(clients)}",
        f"--jobs={int(jobs)}",
        f"--protocol={protocol}",
    ]
    if progress:
        argv.append(f"--progress={int(progress)}")
    if rate:
        argv.append(f"--rate={float(rate):g}")
    if script_file:
        argv.append(f"--file={script_file}")
    else:
        if builtin not in BUILTIN_SCRIPTS:
            raise PgbenchError(f"script: {builtin!r} is not a built-in script ({', '.join(BUILTIN_SCRIPTS)})")
        argv.append(f"--builtin={builtin}")
    return argv


def script_writes(builtin=None, script_text=None):
    """Whether a script changes data: built-ins except select-only; custom scripts with a writing verb."""
    if script_text is not None:
        return bool(_WRITES.search(script_text))
    return builtin not in READ_ONLY_BUILTINS


def _number(text):
    return float(text) if "." in text else int(text)


def parse_report(stdout, stderr=""):
    """Parse pgbench's final report (stdout) and its ``--progress`` lines (stderr) into a dict.

    Keys present when pgbench printed them: ``tps``, ``tps_including_connections`` (old versions),
    ``latency_average_ms``, ``latency_stddev_ms``, ``transactions``, ``failed_transactions``,
    ``schedule_lag_average_ms`` ... plus ``progress``: ``[{"seconds", "tps", "latency_ms",
    "stddev_ms", "lag_ms", "failed"}]``.
    """
    report = {}
    for key, pattern in _SUMMARY.items():
        match = pattern.search(stdout)
        if match:
            value = match.group(1).strip()
            report[key] = int(value) if key in _INTEGERS else (_number(value) if key.endswith("_ms") else value)
    for match in _TPS.finditer(stdout):
        value, note = float(match.group(1)), match.group(2)
        if note.startswith("including"):
            report["tps_including_connections"] = value
        else:
            report["tps"] = value
    progress = []
    for match in _PROGRESS.finditer(stderr or ""):
        stddev, rest = match.group(4), match.group(5)
        lag = _PROGRESS_LAG.search(rest)
        failed = _PROGRESS_FAILED.search(rest)
        progress.append(
            {
                "seconds": float(match.group(1)),
                "tps": float(match.group(2)),
                "latency_ms": float(match.group(3)),
                "stddev_ms": None if stddev == "NaN" else float(stddev),
                "lag_ms": float(lag.group(1)) if lag else None,
                "failed": int(failed.group(1)) if failed else None,
            }
        )
    report["progress"] = progress
    return report


def result(mode, command, rows=0, seconds=0.0, rate=None, stdout="", markers=None, **extra):
    """The module's return fields; the defaults are those of an exit that ran nothing (no-op, check mode)."""
    fields = dict(
        mode=mode,
        rows=rows,
        seconds=seconds,
        rate=rate,
        command=command,
        stdout=stdout,
        markers=[] if markers is None else markers,
    )
    fields.update(extra)
    return fields


def aborted_clients(stderr):
    """Clients pgbench reports as aborted (``client 0 script 0 aborted in command 4 ...``)."""
    return len(_ABORTED.findall(stderr or ""))


def _loss_line(text):
    for row in (text or "").splitlines():
        if lost_connection_text(row):
            return one_line(row.replace("pgbench: error: ", ""), 200)
    return "connection lost"


def run_segments(duration, argv_for, execute, probe, backoff, clock=time.monotonic, sleep=time.sleep):
    """Run pgbench for ``duration`` seconds, again for the rest of it after each connection loss.

    ``argv_for(seconds)`` is the command line of a run of ``seconds``; ``execute(argv)`` runs it and
    returns ``(rc, stdout, stderr)``; ``probe()`` opens and closes a connection (raises when it
    cannot). Returns ``(segments, info)``: one dict per pgbench process (``start_s``, ``seconds``,
    ``rc``, ``argv``, ``stdout``, ``stderr``) and ``{"reconnects", "seconds_disconnected", "log"}``.
    Raises :class:`PgbenchFailed` for any other failure, :class:`OutageTooLong` past the outage
    bound and :class:`PgbenchError` when reconnecting fails for a non-transient reason.
    """
    start = clock()
    segments = []
    info = {"reconnects": 0, "seconds_disconnected": 0.0, "log": []}

    def note(text):
        info["log"].append(f"{clock() - start:.1f} s: {text}")

    seconds = int(duration)
    while True:
        argv = argv_for(seconds)
        began = clock() - start
        rc, out, err = execute(argv)
        segments.append(
            {"start_s": round(began, 3), "seconds": round(clock() - start - began, 3), "rc": rc, "argv": argv,
             "stdout": out, "stderr": err}
        )  # fmt: skip
        if rc == 0:
            return segments, info
        if not backoff.enabled or not lost_connection_text(f"{err}\n{out}"):
            raise PgbenchFailed(rc, out, err)
        note(f"pgbench exited (rc={rc}) after losing its connection: {_loss_line(err + chr(10) + out)}")
        lost_at = clock()
        attempt = 0
        while True:
            left = duration - (clock() - start)
            if left < 1:
                info["seconds_disconnected"] += clock() - lost_at
                note("the run ended while disconnected")
                return segments, info
            attempt += 1
            wait = backoff.next_wait(attempt, clock() - lost_at)
            if wait is None:
                info["seconds_disconnected"] += clock() - lost_at
                raise OutageTooLong(
                    f"the server did not come back within outage_max_seconds ({backoff.give_up_after:g} s,"
                    f" {attempt - 1} attempts)"
                )
            sleep(min(wait, left))
            try:
                probe()
            except (PgConnectionError, OSError) as exc:
                if not transient_connect_error(exc):
                    raise PgbenchError(f"reconnecting failed: {one_line(exc)}") from None
                note(f"reconnect attempt {attempt} failed: {connect_reason(exc)}")
                continue
            break
        info["seconds_disconnected"] += clock() - lost_at
        info["reconnects"] += 1
        seconds = math.floor(duration - (clock() - start))
        note(f"reconnected after {clock() - lost_at:.1f} s ({attempts(attempt)}); pgbench again for {seconds} s")
        if seconds < 1:
            return segments, info


_SUMMED = ("transactions", "failed_transactions", "skipped_transactions", "late_transactions")


def combine(segments, seconds):
    """One report from the segments' reports; a single segment's is pgbench's own, unchanged.

    After a reconnect: counts are summed, latency averages weighted by transactions, the standard
    deviation pooled, ``tps`` is transactions per wall-clock second of the whole run (outages
    included) and progress times are seconds since the run started.
    """
    parsed = [parse_report(seg["stdout"], seg["stderr"]) for seg in segments]
    if len(parsed) == 1:
        return parsed[0]
    report = {}
    for part in parsed:
        for key in ("transaction_type", "scaling_factor", "query_mode", "clients", "threads"):
            if key in part and key not in report:
                report[key] = part[key]
        for key in _SUMMED:
            if key in part:
                report[key] = report.get(key, 0) + part[key]
        for key in ("initial_connection_time_ms",):
            if key in part and key not in report:
                report[key] = part[key]
    report.setdefault("transactions", 0)
    weights = [(part, part.get("transactions", 0)) for part in parsed]
    total = sum(w for _part, w in weights if w)
    for key in ("latency_average_ms", "schedule_lag_average_ms"):
        rows = [(part[key], w) for part, w in weights if key in part and w]
        if rows and total:
            report[key] = round(sum(v * w for v, w in rows) / sum(w for _v, w in rows), 3)
    rows = [(part["latency_average_ms"], part["latency_stddev_ms"], w) for part, w in weights
            if w and "latency_average_ms" in part and "latency_stddev_ms" in part]  # fmt: skip
    if rows:
        n = sum(w for _m, _s, w in rows)
        mean = sum(m * w for m, _s, w in rows) / n
        variance = sum(w * (s * s + m * m) for m, s, w in rows) / n - mean * mean
        report["latency_stddev_ms"] = round(math.sqrt(max(variance, 0.0)), 3)
    lags = [part["schedule_lag_max_ms"] for part in parsed if "schedule_lag_max_ms" in part]
    if lags:
        report["schedule_lag_max_ms"] = max(lags)
    if seconds > 0:
        report["tps"] = round(report["transactions"] / seconds, 3)
    progress = []
    for seg, part in zip(segments, parsed):  # noqa: B905 - Python 3.8 targets
        for row in part["progress"]:
            progress.append({**row, "seconds": round(row["seconds"] + seg["start_s"], 3)})
    report["progress"] = progress
    return report


# --------------------------------------------------------------------------- the module's steps
TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")


def table_counts(m):
    present = m.query(
        "SELECT c.relname::text AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
        " ON n.oid = c.relnamespace WHERE c.relname = ANY(%s) AND c.relkind IN ('r', 'p')"
        " AND n.nspname = ANY(current_schemas(false))",
        [list(TABLES)],
    )
    names = {row["name"] for row in present}
    missing = [t for t in TABLES if t not in names]
    if missing:
        m.fail(
            f"the pgbench tables {', '.join(missing)} do not exist in database "
            f"{m.params.get('login_db') or '(default)'}"
            " (create them with roles/publisher/files/schema/pgbench.sql, the publisher role's publisher_schema_files)"
        )
    return m.query_one(
        "SELECT (SELECT count(*) FROM pgbench_branches) AS branches, (SELECT count(*) FROM pgbench_tellers) AS"
        " tellers, (SELECT count(*) FROM pgbench_accounts) AS accounts"
    )


def run_pgbench(m, argv, env):
    start = time.monotonic()
    rc, out, err = m.module.run_command(argv, environ_update=env)
    seconds = time.monotonic() - start
    if rc != 0:
        m.fail(
            f"pgbench failed (rc={rc}): {(err or out).strip()[-2000:]}",
            command=argv,
            stdout=out,
            stderr=err,
        )
    return out, err, seconds


def init(m, exe, env, markers):
    p = m.params
    try:
        argv = init_argv(exe, p["scale"])
    except PgbenchError as exc:
        m.fail(str(exc))
    before = table_counts(m)
    expected = {"branches": p["scale"], "tellers": 10 * p["scale"], "accounts": ACCOUNTS_PER_SCALE * p["scale"]}
    rows = sum(expected.values())
    m.close()  # pgbench truncates: no session of ours may hold a lock on the tables
    if before == expected and not p["force"]:
        m.exit(changed=False, **result("init", argv, scale=p["scale"]))
    m.queries.append(" ".join(argv))
    if m.check_mode:
        m.exit(changed=True, **result("init", argv, scale=p["scale"], rows=rows))
    markers.start(planned_rows=rows, scale=p["scale"])
    out, err, seconds = run_pgbench(m, argv, env)
    seconds, rate = round(seconds, 3), round(rows / seconds, 1)
    markers.stop(rows=rows, seconds=seconds, rate=rate)
    m.exit(
        changed=True,
        **result(
            "init",
            argv,
            scale=p["scale"],
            rows=rows,
            seconds=seconds,
            rate=rate,
            stdout=out + err,
            markers=markers.written,
        ),
    )


def run(m, exe, env, markers):
    p = m.params
    writes = script_writes(p["script"], p.get("script_text"))
    script_file = None
    workdir = None
    try:
        backoff = Backoff(p["reconnect_max_seconds"], p["outage_max_seconds"])
    except ValueError as exc:
        m.fail(str(exc))
    try:
        if p.get("script_text") is not None:
            workdir = tempfile.mkdtemp(prefix="inventium-pgbench-")
            script_file = os.path.join(workdir, "script.sql")
            with open(script_file, "w", encoding="utf-8") as handle:
                handle.write(p["script_text"])

        def argv_for(seconds):
            return run_argv(
                exe,
                seconds,
                clients=p["clients"],
                jobs=p["jobs"],
                rate=p.get("rate"),
                builtin=p["script"],
                script_file=script_file,
                progress=p["progress_interval"],
                protocol=p["protocol"],
            )

        try:
            argv = argv_for(p["duration"])
        except PgbenchError as exc:
            m.fail(str(exc))
        m.queries.append(" ".join(argv))
        if m.check_mode:
            m.exit(changed=writes, **result("run", argv, progress=[]))
        m.close()
        markers.start(target_rate=p.get("rate"), clients=p["clients"], duration=p["duration"])
        start = time.monotonic()
        try:
            segments, info = run_segments(
                p["duration"],
                argv_for,
                lambda command: m.module.run_command(command, environ_update=env),
                lambda: connect(p).close(),
                backoff,
            )
        except PgbenchFailed as exc:
            m.fail(str(exc), command=argv, stdout=exc.stdout, stderr=exc.stderr)
        except (OutageTooLong, PgbenchError) as exc:
            markers.stop(failed=True)
            m.fail(f"pgbench: {exc}", command=argv)
        seconds = time.monotonic() - start
    finally:
        if workdir:
            for name in os.listdir(workdir):
                os.unlink(os.path.join(workdir, name))
            os.rmdir(workdir)
    report = combine(segments, seconds)
    transactions = report.get("transactions", 0)
    aborted = sum(aborted_clients(seg["stderr"]) for seg in segments)
    markers.stop(
        rows=transactions,
        seconds=round(seconds, 3),
        rate=report.get("tps"),
        latency_ms=report.get("latency_average_ms"),
        reconnects=info["reconnects"],
        aborted_clients=aborted,
    )
    scale = report.pop("scaling_factor", None)
    restarted = "\n".join(
        (f"--- pgbench again at {seg['start_s']:.1f} s after a connection loss ---\n" if i else "") + seg["stdout"]
        for i, seg in enumerate(segments)
    )
    fields = result(
        "run",
        argv,
        scale=scale,
        rows=transactions,
        seconds=round(seconds, 3),
        rate=report.get("tps"),
        stdout=restarted,
        markers=markers.written,
        reconnects=info["reconnects"],
        seconds_disconnected=round(info["seconds_disconnected"], 3),
        aborted_clients=aborted,
        reconnect_log=info["log"],
        segments=[
            {
                "start_s": seg["start_s"],
                "seconds": seg["seconds"],
                "rc": seg["rc"],
                "duration": next(int(a.split("=", 1)[1]) for a in seg["argv"] if a.startswith("--time=")),
                "transactions": part.get("transactions", 0),
                "failed_transactions": part.get("failed_transactions"),
                "aborted_clients": aborted_clients(seg["stderr"]),
            }
            for seg, part in zip(segments, (parse_report(s["stdout"], "") for s in segments))  # noqa: B905
        ],
    )
    m.exit(changed=writes and transactions > 0, **{**report, **fields})


def execute(m):
    """The ``pgbench`` module's steps after argument parsing (``m``: its PgModule)."""
    p = m.params
    try:
        exe = find_pgbench(p.get("pgbench_path"))
    except PgbenchError as exc:
        m.fail(str(exc))
    env = environment(p, p.get("login_password"))
    m.connect()
    name = "pgbench_init" if p["mode"] == "init" else "pgbench"
    markers = Markers(m, p.get("influx_endpoints"), node=p["influx_node"], workload=name)
    if p["mode"] == "init":
        init(m, exe, env, markers)
    else:
        run(m, exe, env, markers)
