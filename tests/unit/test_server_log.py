"""The server-log parser and diagnoses (``_server_log.py``) over real PostgreSQL 15, 17 and 18 logs, the error
window, the fix texts and the subscription checks built on them.

The logs in ``tests/unit/data/server_log`` were written by real servers (see its README); each major's ``.log``,
``.csv`` and ``.json`` are the same events in the three formats.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _server_log as log
from ansible_collections.inventium.logical_replication.plugins.module_utils._checks import evaluate_checks

DATA = Path(__file__).resolve().parent / "data" / "server_log"
FORMATS = {"jsonlog": "json", "csvlog": "csv", "stderr": "log"}

# (pid, worker, kind, relation, key, finish LSN) of every worker error, in log order, per major.
APPLY, SYNC = "apply", "table synchronization"
EXPECTED = {
    15: [
        (19176, APPLY, "unique_violation", "public.books", "(id)=(5900000)", "0/1925A60"),
        (19195, APPLY, "unique_violation", "public.books", "(id)=(5900000)", "0/1925A60"),
        (19229, APPLY, "missing_column", "public.books", None, "0/1925EA8"),
        (19246, APPLY, "missing_column", "public.books", None, "0/1925EA8"),
        (19370, SYNC, "unique_violation", "shelves", "(id)=(42)", None),
        (19455, SYNC, "unique_violation", "shelves", "(id)=(42)", None),
        (19270, APPLY, "missing_relation", "public.shelves", None, "0/192ABA8"),
        (19527, APPLY, "missing_relation", "public.shelves", None, "0/192ABA8"),
        (19560, APPLY, "connection", None, None, None),
        (19588, APPLY, "unique_violation", "public.books", "(id)=(9)", "0/192AF80"),
        (19643, APPLY, "unique_violation", "public.books", "(id)=(9)", "0/192AF80"),
    ],
    17: [
        (20039, APPLY, "unique_violation", "public.books", "(id)=(5900000)", "0/18FD2A0"),
        (20050, APPLY, "unique_violation", "public.books", "(id)=(5900000)", "0/18FD2A0"),
        (20099, APPLY, "missing_column", "public.books", None, "0/18FD6E0"),
        (20137, APPLY, "missing_column", "public.books", None, "0/18FD6E0"),
        (20169, SYNC, "unique_violation", "shelves", "(id)=(42)", None),
        (20251, SYNC, "unique_violation", "shelves", "(id)=(42)", None),
        (20150, APPLY, "missing_relation", "public.shelves", None, "0/1902340"),
        (20343, APPLY, "missing_relation", "public.shelves", None, "0/1902340"),
        (20367, APPLY, "connection", None, None, None),
        (20400, APPLY, "connection", None, None, None),
        (20412, APPLY, "unique_violation", "public.books", "(id)=(9)", "0/1902718"),
        (20468, APPLY, "unique_violation", "public.books", "(id)=(9)", "0/1902718"),
    ],
    18: [
        (20765, APPLY, "unique_violation", "public.books", "(id)=(5900000)", "0/1B86808"),
        (20777, APPLY, "unique_violation", "public.books", "(id)=(5900000)", "0/1B86808"),
        (20796, APPLY, "missing_column", "public.books", None, "0/1B86C40"),
        (20809, APPLY, "missing_column", "public.books", None, "0/1B86C40"),
        (20851, SYNC, "unique_violation", "shelves", "(id)=(42)", None),
        (20941, SYNC, "unique_violation", "shelves", "(id)=(42)", None),
        (20832, APPLY, "missing_relation", "public.shelves", None, "0/1B8BD78"),
        (21101, APPLY, "missing_relation", "public.shelves", None, "0/1B8BD78"),
        (21110, APPLY, "connection", None, None, None),
        (21137, APPLY, "unique_violation", "public.books", "(id)=(9)", "0/1B921D0"),
    ],
}


def diagnoses(major, fmt):
    text = (DATA / f"pg{major}.{FORMATS[fmt]}").read_text()
    source = f"server log pg{major}.{FORMATS[fmt]}"
    return [log.diagnose(e, source=source) for e in log.worker_errors(log.parse_records(text, fmt))]


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("major", sorted(EXPECTED))
def test_worker_errors_of_real_logs(major, fmt):
    found = diagnoses(major, fmt)
    assert [(d["pid"], d["worker"], d["kind"], d["relation"], d["key"], d["finish_lsn"]) for d in found] == (
        EXPECTED[major]
    )
    assert {d["subscription"] for d in found} == {"books_sub"}
    assert all(d["severity"] == "ERROR" for d in found)
    # The SQLSTATE is in jsonlog and csvlog; stderr has it only with %e in log_line_prefix.
    states = [d["sqlstate"] for d in found]
    if fmt == "stderr":
        assert set(states) == {None}
    else:
        assert states[0] == "23505"
        assert states[2] == "55000"
        assert "08006" in states


@pytest.mark.parametrize("major", sorted(EXPECTED))
def test_formats_agree(major):
    """The same events read from the three files give the same diagnoses (the SQLSTATE aside)."""
    views = []
    for fmt in FORMATS:
        views.append(
            [{k: v for k, v in d.items() if k not in ("sqlstate", "time", "source")} for d in diagnoses(major, fmt)]
        )
    assert views[0] == views[1] == views[2]
    json_times = [d["time"] for d in diagnoses(major, "jsonlog")]
    assert json_times == [d["time"] for d in diagnoses(major, "csvlog")]
    # The last conflict was logged after a reload to '%t ...' (seconds only): its time is that second.
    stderr_times = [d["time"] for d in diagnoses(major, "stderr")]
    assert stderr_times[:-2] == json_times[:-2]
    assert stderr_times[-1] == json_times[-1][:19] + "+00:00"


def test_apply_error_with_key_pg15():
    first = diagnoses(15, "jsonlog")[0]
    assert first["message"] == 'duplicate key value violates unique constraint "books_pkey"'
    assert first["detail"] == "Key (id)=(5900000) already exists."
    assert first["constraint"] == "books_pkey"
    assert first["origin"] == "pg_16392"
    assert first["message_type"] == "INSERT"
    assert first["remote_xid"] == 729
    assert first["time"] == "2026-12-04T11:29:41.347000+00:00"
    assert first["fix"] == (
        "Delete or fix the conflicting row on the subscriber (public.books, key (id)=(5900000)), or skip the remote "
        "transaction: ALTER SUBSCRIPTION books_sub SKIP (lsn = '0/1925A60') - with this collection the "
        "inventium.logical_replication.subscription module's skip_lsn: 0/1925A60 (name: books_sub); skipping drops "
        "the whole remote transaction, its other changes included. The apply worker retries by itself."
    )


def test_conflict_pg18_keeps_the_key_not_the_rows():
    first = diagnoses(18, "csvlog")[0]
    assert first["message"] == 'conflict detected on relation "public.books": conflict=insert_exists'
    assert first["conflict"] == "insert_exists"
    assert first["constraint"] == "books_pkey"
    assert first["key"] == "(id)=(5900000)"
    assert "local" not in first["detail"]
    assert "remote" not in first["detail"]
    assert first["detail"].startswith('Key already exists in unique index "books_pkey"')
    assert "SKIP (lsn = '0/1B86808')" in first["fix"]


@pytest.mark.parametrize("major", sorted(EXPECTED))
def test_tablesync_error(major):
    sync = next(d for d in diagnoses(major, "stderr") if d["worker"] == SYNC)
    assert sync["message"] == 'duplicate key value violates unique constraint "shelves_pkey"'
    assert sync["finish_lsn"] is None
    assert "SKIP" not in sync["fix"]
    assert sync["fix"].startswith("The initial copy of shelves conflicts with rows already on the subscriber, key")


@pytest.mark.parametrize("major", sorted(EXPECTED))
def test_other_fixes(major):
    by_kind = {d["kind"]: d for d in diagnoses(major, "jsonlog")}
    assert by_kind["missing_column"]["missing_columns"] == '"note"'
    assert by_kind["missing_column"]["fix"].startswith('Add the missing column(s) "note" to public.books')
    assert by_kind["missing_relation"]["fix"].startswith("Create public.shelves on the subscriber")
    assert "REFRESH PUBLICATION" in by_kind["missing_relation"]["fix"]
    assert by_kind["connection"]["fix"].startswith("The connection to the publisher failed or was lost")


def test_permission_fix():
    error = {
        "message": "permission denied for table books",
        "sqlstate": "42501",
        "worker": APPLY,
        "subscription": "s",
        "context": 'processing remote data for replication origin "pg_16400" during message type "INSERT" for '
        'replication target relation "public.books" in transaction 740, finished at 0/1A2B3C4',
    }
    found = log.diagnose(error)
    assert found["kind"] == "permission_denied"
    assert found["relation"] == "public.books"
    assert found["fix"].startswith("Grant the privileges the apply worker needs on public.books")


def test_publisher_permission_fix():
    # PostgreSQL 17's table synchronization worker when the publisher refuses the replication role the copy
    # (seen in the lab after a table was published without GRANT SELECT): SQLSTATE 08006, not 42501.
    error = {
        "message": 'could not start initial contents copy for table "public.sc_probe": '
        "ERROR:  permission denied for table sc_probe",
        "sqlstate": "08006",
        "worker": SYNC,
        "subscription": "subscriber2_sub",
    }
    found = log.diagnose(error)
    assert found["kind"] == "publisher_permission_denied"
    assert found["relation"] == "public.sc_probe"
    assert found["fix"].startswith("The publisher refused the subscription's replication role access to public.sc_")
    assert "GRANT SELECT ON public.sc_probe" in found["fix"]


def test_lines_that_are_not_worker_errors():
    # A client session's error (it has a statement), worker start messages and the postmaster's log lines.
    text = (
        '2026-12-04 11:27:12.633 UTC [10892] LOG:  logical replication apply worker for subscription "s" has started\n'
        '2026-12-04 11:27:13.000 UTC [10999] ERROR:  duplicate key value violates unique constraint "books_pkey"\n'
        "2026-12-04 11:27:13.000 UTC [10999] DETAIL:  Key (id)=(1) already exists.\n"
        "2026-12-04 11:27:13.000 UTC [10999] STATEMENT:  INSERT INTO books VALUES (1)\n"
        "2026-12-04 11:27:14.000 UTC [10851] LOG:  received SIGHUP, reloading configuration files\n"
        # a worker stopped by a shutdown (pg_ctl stop -m fast) is no failure
        "2026-12-04 11:27:15.000 UTC [10892] FATAL:  terminating logical replication worker due to administrator "
        "command\n"
        '2026-12-04 11:27:15.010 UTC [10851] LOG:  background worker "logical replication apply worker" (PID 10892) '
        "exited with exit code 1\n"
    )
    records = log.parse_records(text, "stderr")
    assert [r["severity"] for r in records] == ["LOG", "ERROR", "STATEMENT", "LOG", "FATAL", "LOG"]
    assert records[1]["detail"] == "Key (id)=(1) already exists."
    assert log.worker_errors(records) == []


def test_origin_names_the_subscription():
    """A worker whose start is not in the part read: the apply CONTEXT's origin pg_<oid> names it."""
    text = (DATA / "pg17.log").read_text()
    at = text.index("[20150] ERROR")
    tail = text[text.rindex("\n", 0, at) + 1 :]  # starts at the error line, without its worker's start message
    [first, *_rest] = log.worker_errors(log.parse_records(tail, "stderr"))
    assert first["subscription"] is None
    assert log.diagnose(first, {16392: "books_sub"})["subscription"] == "books_sub"
    assert log.diagnose(first)["subscription"] is None


@pytest.mark.parametrize(
    ("prefix", "line", "pid", "time"),
    [
        ("%m [%p] ", "2026-12-04 11:27:12.804 UTC [10892] ERROR:  x", 10892, "2026-12-04T11:27:12.804000+00:00"),
        (
            "%m [%p] %q%a %u@%d ",
            "2026-12-04 11:27:12.804 UTC [10892] psql postgres@app ERROR:  x",
            10892,
            "2026-12-04T11:27:12.804000+00:00",
        ),
        ("%m [%p] %q%a %u@%d ", "2026-12-04 11:27:12.804 UTC [10892] ERROR:  x", 10892, None),
        ("%t [%p]: [%l-1] ", "2026-12-04 11:27:12 CET [7]: [3-1] ERROR:  x", 7, "2026-12-04T11:27:12+01:00"),
        ("%m %e [%p] ", "2026-12-04 11:27:12.804 +02 23505 [9] ERROR:  x", 9, "2026-12-04T11:27:12.804000+02:00"),
    ],
)
def test_other_prefixes(prefix, line, pid, time):
    [record] = log.parse_stderr(line, utc_offset=3600, log_line_prefix=prefix)
    assert record["pid"] == pid
    assert record["message"] == "x"
    assert record["severity"] == "ERROR"
    if time:
        assert record["time"].isoformat() == time
    assert record["sqlstate"] == ("23505" if "%e" in prefix else None)


def test_timestamps():
    assert log.parse_timestamp("2026-12-04 11:27:12.804 UTC").isoformat() == "2026-12-04T11:27:12.804000+00:00"
    assert log.parse_timestamp("2026-12-04 11:27:12 -05:30").isoformat() == "2026-12-04T11:27:12-05:30"
    assert log.parse_timestamp("2026-12-04 11:27:12 Europe/Berlin", 3600).isoformat() == "2026-12-04T11:27:12+01:00"
    assert log.parse_timestamp("no time here") is None


# ---- the window ------------------------------------------------------------------------------


def window_summary(now, minutes=15, disabled=None):
    found = diagnoses(15, "jsonlog")
    return log.summarize(found, ["books_sub", "other"], now, minutes, disabled=disabled)


def test_window_counts_recent_errors_only():
    last = datetime(2026, 12, 4, 11, 29, 47, 623000, tzinfo=UTC)
    summary, unattributed = window_summary(last + timedelta(minutes=1))
    entry = summary["books_sub"]
    assert entry["apply_errors"] == 9
    assert entry["sync_errors"] == 2
    assert entry["last_error_time"] == last.isoformat()
    assert unattributed == []
    assert summary["other"] == {
        "apply_errors": 0,
        "sync_errors": 0,
        "conflicts": {},
        "last_error_time": None,
        "diagnoses": [],
        "disabled_by_error_time": None,
    }
    newest = entry["diagnoses"][0]
    assert newest["key"] == "(id)=(9)"
    assert newest["count"] == 2
    assert newest["first_time"] == "2026-12-04T11:29:47.572000+00:00"
    assert newest["last_time"] == newest["time"] == last.isoformat()
    assert newest["pid"] == 19643
    assert newest["recent"] is True
    assert len(entry["diagnoses"]) == log.MAX_DIAGNOSES

    # 20 minutes later nothing is recent, the last error is still known
    summary = window_summary(last + timedelta(minutes=20))[0]
    entry = summary["books_sub"]
    assert (entry["apply_errors"], entry["sync_errors"]) == (0, 0)
    assert entry["last_error_time"] == last.isoformat()
    assert not any(d["recent"] for d in entry["diagnoses"])

    # a window that ends between the errors: only the later ones count (fractions of minutes)
    summary = window_summary(last + timedelta(seconds=1), minutes=1.5 / 60)[0]
    assert summary["books_sub"]["apply_errors"] == 2  # the two last conflicts, not the restart 1 s before


def test_pg18_conflicts_are_counted_per_type():
    last = datetime(2026, 12, 4, 11, 30, 8, tzinfo=UTC)
    summary = log.summarize(diagnoses(18, "jsonlog"), ["books_sub"], last + timedelta(minutes=1))[0]
    assert summary["books_sub"]["conflicts"] == {"insert_exists": 3}


# ---- the checks ----------------------------------------------------------------------------


def subscription(**extra):
    return {
        "name": "books_sub",
        "enabled": True,
        "apply_worker_pid": 4242,
        "apply_error_count": 7,
        "sync_error_count": 2,
        "tables_not_ready": 0,
        "table_states": {"ready": 2},
        **extra,
    }


def errors_fact(now, minutes=15, disabled=None):
    summary, unattributed = window_summary(now, minutes, disabled)
    return {
        "available": True,
        "reason": None,
        "source": "server log log/postgresql.json (jsonlog, last 18.2 kB of 18.2 kB)",
        "window_minutes": float(minutes),
        "covers_since": "2026-12-04T11:29:00+00:00",
        "window_complete": True,
        "subscriptions": [{"name": "books_sub", **summary["books_sub"]}],
        "unattributed": unattributed,
    }


LAST = datetime(2026, 12, 4, 11, 29, 47, 623000, tzinfo=UTC)


def test_checks_report_recent_errors_with_the_diagnosis():
    facts = {"subscriptions": [subscription(apply_worker_pid=None)], "errors": errors_fact(LAST)}
    found = {c["code"]: c for c in evaluate_checks(facts)}
    errors = found["subscription_errors"]
    assert errors["message"].startswith(
        "subscription(s) with errors in the last 15 min: books_sub (9 apply errors in the last 15 min (lifetime 7), "
        "2 sync errors in the last 15 min (lifetime 2))"
    )
    assert (
        'duplicate key value violates unique constraint "books_pkey" (SQLSTATE 23505), on public.books, key '
        in (errors["message"])
    )
    assert "remote transaction finished at 0/192AF80" in errors["message"]
    assert errors["message"].endswith("(source: server log pg15.json)")
    assert errors["hint"].startswith("books_sub: Delete or fix the conflicting row on the subscriber (public.books")
    assert "SKIP (lsn = '0/192AF80')" in errors["hint"]
    assert errors["diagnoses"] == [
        {
            "subscription": "books_sub",
            "worker": "apply",
            "kind": "unique_violation",
            "relation": "public.books",
            "key": "(id)=(9)",
            "error": 'duplicate key value violates unique constraint "books_pkey"',
            "sqlstate": "23505",
            "finish_lsn": "0/192AF80",
            "time": LAST.isoformat(),
            "count": 2,
            "fix": errors["diagnoses"][0]["fix"],
            "source": "server log pg15.json",
        }
    ]
    assert errors["error_counts"] == [
        {
            "subscription": "books_sub",
            "apply_errors": 9,
            "sync_errors": 2,
            "apply_errors_lifetime": 7,
            "sync_errors_lifetime": 2,
            "window_minutes": 15.0,
        }
    ]
    not_running = found["subscription_not_running"]
    assert "books_sub: duplicate key value violates unique constraint" in not_running["message"]
    assert "SKIP (lsn = '0/192AF80')" in not_running["hint"]
    assert not_running["hint"].endswith("see the subscriber's server log.")  # the general hint stays


def test_checks_forget_old_errors_of_a_running_worker():
    facts = {"subscriptions": [subscription()], "errors": errors_fact(LAST + timedelta(minutes=16))}
    assert evaluate_checks(facts) == []


def test_checks_fall_back_to_lifetime_counters():
    unavailable = {
        "available": False,
        "reason": "logging_collector is off",
        "source": "source unavailable: logging_collector is off",
        "subscriptions": [],
    }
    for errors in (unavailable, None):
        facts = {"subscriptions": [subscription()], "errors": errors}
        [found] = evaluate_checks(facts)
        assert found["code"] == "subscription_errors"
        assert found["message"].startswith("subscription(s) with errors since the statistics were reset (lifetime")
        assert found["message"].endswith("books_sub (apply errors 7, sync errors 2)")
        assert ("source unavailable: logging_collector is off" in found["message"]) is (errors is not None)
        assert "diagnoses" not in found
        assert found["error_counts"][0]["apply_errors"] is None
        assert found["error_counts"][0]["apply_errors_lifetime"] == 7


def test_tables_not_ready_names_the_sync_error():
    facts = {
        "subscriptions": [subscription(tables_not_ready=1, table_states={"ready": 1, "data_copy": 1})],
        "errors": errors_fact(LAST),
    }
    found = {c["code"]: c for c in evaluate_checks(facts)}
    not_ready = found["tables_not_ready"]
    assert 'books_sub: duplicate key value violates unique constraint "shelves_pkey"' in not_ready["message"]
    assert "table synchronization worker" in not_ready["message"]
    assert not_ready["diagnoses"][0]["relation"] == "shelves"
    assert not_ready["hint"].startswith("books_sub: The initial copy of shelves conflicts")


def test_analyze_text_as_from_docker_logs():
    """A log text obtained another way (e.g. ``docker logs`` of a container logging to stderr) gives the same."""
    text = (DATA / "pg15.log").read_text()
    result = log.analyze_text(text, "stderr", ["books_sub"], LAST + timedelta(minutes=1), source="docker logs sub")
    [entry] = result["subscriptions"]
    assert (entry["name"], entry["apply_errors"], entry["sync_errors"]) == ("books_sub", 9, 2)
    assert entry["diagnoses"][0]["source"] == "docker logs sub"
    assert result["covers_since"] == "2026-12-04T11:29:40.118000+00:00"  # the first line
    assert result["window_complete"] is False  # the text starts after the window's start: it may have been cut off
    result = log.analyze_text(text, "stderr", ["books_sub"], LAST + timedelta(seconds=1), 1 / 60)
    assert result["window_complete"] is True  # the text starts before the window
    assert log.analyze_text(text, "stderr", ["books_sub"], LAST, complete=True)["window_complete"] is True


def test_disabled_by_error_names_the_error_that_disabled_it():
    text = '2026-12-04 11:53:02.797 UTC [19994] LOG:  subscription "books_sub" has been disabled because of an error\n'
    disabled = log.disabled_by_error(log.parse_records(text, "stderr"))
    assert disabled == {"books_sub": datetime(2026, 12, 4, 11, 53, 2, 797000, tzinfo=UTC)}
    # disabled after the last conflict: that error is named, even 20 minutes later (outside the window)
    facts = {
        "subscriptions": [subscription(enabled=False, apply_worker_pid=None)],
        "errors": errors_fact(LAST + timedelta(minutes=20), disabled=disabled),
    }
    found = {c["code"]: c for c in evaluate_checks(facts)}
    assert found["subscription_disabled"]["diagnoses"][0]["key"] == "(id)=(9)"
    assert "SKIP (lsn = '0/192AF80')" in found["subscription_disabled"]["hint"]
    assert "subscription_errors" not in found
    # disabled by hand (the log does not say otherwise): no error is blamed
    facts["errors"] = errors_fact(LAST + timedelta(minutes=20))
    found = {c["code"]: c for c in evaluate_checks(facts)}
    assert "diagnoses" not in found["subscription_disabled"]


@pytest.mark.parametrize(
    ("detail", "key"),
    [
        ("Key (a, b)=(1, x) already exists.", "(a, b)=(1, x)"),
        ('Key (author_id)=(7) is not present in table "authors".', "(author_id)=(7)"),
        ("Key (lower(name))=(bob) already exists.", "(lower(name))=(bob)"),
        ("no key here", None),
    ],
)
def test_key_forms(detail, key):
    error = {"message": "x", "detail": detail, "worker": APPLY, "subscription": "s"}
    assert log.diagnose(error)["key"] == key
