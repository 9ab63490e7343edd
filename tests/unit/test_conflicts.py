"""The conflicts playbook's logic (``_conflicts.py``): the cases' SQL, the go/no-go rows, what a case shows in
``replication_info``'s counters and log diagnoses (parsed here from PostgreSQL 18 jsonlog lines), the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils._conflicts import (
    LOSER,
    WINNER,
    ConflictsError,
    cases,
    log_line,
    observe,
    plan,
    preflight,
    render,
    report,
    seed_sql,
    setup_sql,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._server_log import analyze_text
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import CONFLICT_TYPES
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import IdentifierError

SUB = "conflict_demo_from_peer18b"
NOW = datetime(2026, 12, 4, 22, 21, tzinfo=UTC)


def _jsonlog(*records):
    lines = []
    for severity, message, detail, context, when in records:
        lines.append(
            json.dumps(
                {
                    "timestamp": f"2026-12-04 22:{when} UTC",
                    "pid": 4242,
                    "error_severity": severity,
                    "state_code": "23505" if severity == "ERROR" else "00000",
                    "message": message,
                    "detail": detail,
                    "context": context,
                    "backend_type": "logical replication apply worker",
                }
            )
        )
    return "\n".join(lines) + "\n"


def _context(kind, xid, lsn):
    return (
        'processing remote data for replication origin "pg_16397" during message type "'
        + kind
        + '" for replication target relation "public.conflict_demo" in transaction '
        + f"{xid}, finished at {lsn}"
    )


# As PostgreSQL 18 (the harness's 18.4) wrote them (the apply worker retries the insert every 250 ms).
INSERT_EXISTS = (
    "ERROR",
    'conflict detected on relation "public.conflict_demo": conflict=insert_exists',
    'Key already exists in unique index "conflict_demo_pkey", modified locally in transaction 761 at '
    "2026-12-04 22:20:08.182541+00.\nKey (id)=(10); existing local row (10, peer18a, null); remote row "
    "(10, peer18b, null).",
    _context("INSERT", 766, "0/1B88790"),
)
UPDATE_ORIGIN_DIFFERS = (
    "LOG",
    'conflict detected on relation "public.conflict_demo": conflict=update_origin_differs',
    "Updating the row that was modified locally in transaction 765 at 2026-12-04 22:19:18.138174+00.\n"
    "Existing local row (40, peer18a, null); remote row (40, peer18b, null); replica identity (id)=(40).",
    _context("UPDATE", 760, "0/1B87FE0"),
)
OLD_INSERT_EXISTS = (*INSERT_EXISTS[:3], _context("INSERT", 700, "0/1A00000"))


def info(counters=None, workers=(), log_text=None, log_available=True):
    sub = {
        "name": SUB,
        "workers": list(workers),
        "conflicts": {kind: 0 for kind in CONFLICT_TYPES} | (counters or {}),
    }
    result = {"subscriptions": [sub]}
    if log_text is not None or not log_available:
        errors = {"available": log_available, "source": "server log x.json" if log_available else None}
        errors["reason"] = None if log_available else "logging_collector is off"
        if log_available:
            errors.update(analyze_text(log_text, "jsonlog", [SUB], NOW, subscription_oids={16397: SUB}))
        result["errors"] = errors
    return result


# ------------------------------------------------------------------------------------------ SQL


def test_render_quotes_the_table_and_the_values():
    assert render("UPDATE {table} SET v = {w}", '"Odd Schema".Demo', w="it's") == (
        "UPDATE \"Odd Schema\".demo SET v = 'it''s'"
    )
    assert render("SELECT {x}", x="a{table}b") == "SELECT 'a{table}b'"


def test_render_refuses_a_nul_byte_and_a_bad_table():
    with pytest.raises(ConflictsError):
        render("SELECT {x}", x="a\x00")
    with pytest.raises(IdentifierError):
        render("SELECT 1 FROM {table}", "a.b.c.d")


def test_setup_is_idempotent_sql():
    statements = setup_sql("public.conflict_demo", "repair")
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS public.conflict_demo (id integer PRIMARY KEY")
    assert "u integer UNIQUE" in statements[0]
    assert "WHERE NOT EXISTS" in statements[1]
    assert "'repair'" in statements[1]


def test_seed_truncates_on_the_winner_only():
    winner = seed_sql(WINNER, winner="peer18a", loser="peer18b")
    assert winner[0] == "TRUNCATE public.conflict_demo"
    assert "(30, 'peer18a', 31)" in winner[1]
    assert seed_sql(LOSER, winner="peer18a", loser="peer18b") == [
        "INSERT INTO public.conflict_demo (id, v, u) VALUES (32, 'peer18b', 33)"
    ]
    with pytest.raises(ConflictsError):
        seed_sql("third")


def test_cases_cover_every_conflict_type_once():
    found = cases(winner="peer18a", loser="peer18b")
    assert [c["name"] for c in found] == [
        "insert_exists",
        "update_origin_differs",
        "update_missing",
        "delete_missing",
        "update_exists",
        "multiple_unique_conflicts",
    ]
    kinds = [kind for c in found for role in (WINNER, LOSER) for kind in c["expect"][role]]
    assert sorted(set(kinds)) == sorted(CONFLICT_TYPES)
    # Rows of its own per case: no two cases write the same id.
    ids = {}
    for c in found:
        for statement in c["writes"][WINNER] + c["writes"][LOSER]:
            for other, seen in ids.items():
                if other != c["name"]:
                    assert not seen & set(_ids(statement)), (c["name"], other)
            ids.setdefault(c["name"], set()).update(_ids(statement))


def _ids(statement):
    import re

    return {int(m) for m in re.findall(r"(?:id = |VALUES \()(\d+)", statement)}


def test_stopping_cases_repair_under_the_origin_and_logged_ones_do_not():
    by_name = {c["name"]: c for c in cases(winner="peer18a", loser="peer18b", repair_origin="fixer")}
    for name in ("insert_exists", "update_exists", "multiple_unique_conflicts"):
        case = by_name[name]
        assert case["stops"] is True
        assert case["exact"] is False
        assert case["repair"][0] == "SELECT pg_catalog.pg_replication_origin_session_setup('fixer')"
        assert len(case["repair"]) == 2
        assert case["fix"] == []
    for name in ("update_origin_differs", "update_missing", "delete_missing"):
        assert by_name[name]["stops"] is False
        assert by_name[name]["exact"] is True
        assert by_name[name]["repair"] == []
    assert by_name["update_origin_differs"]["diverges"] is True
    assert by_name["update_origin_differs"]["fix"] == ["UPDATE public.conflict_demo SET v = 'peer18a' WHERE id = 40"]
    assert by_name["update_missing"]["expect"] == {
        WINNER: {"delete_origin_differs": 1},
        LOSER: {"update_missing": 1},
    }


def test_plan_bundles_everything():
    result = plan("demo", "a", "b", "o")
    assert result["table"] == "public.demo"
    assert result["seed"][LOSER] == seed_sql(LOSER, "demo", "a", "b")
    assert len(result["cases"]) == 6


# ------------------------------------------------------------------------------------------ preflight


def _settings(track="on", collector="on", pending=None):
    before = {
        "track_commit_timestamp": {"running": track, "pending": (pending or {}).get("track_commit_timestamp")},
        "logging_collector": {"running": collector, "pending": (pending or {}).get("logging_collector")},
    }
    changed = any(value != "on" for value in (track, collector)) and not pending
    return {"changed": changed, "settings": before, "diff": {"before": before, "after": before}}


def _fact(host, major=18, settings=None, checks=None, configured=None, server=None):
    return {
        "host": host,
        "server": server or {"reachable": True, "server": {"major": major, "version": f"{major}.1"}},
        "settings": settings if settings is not None else _settings(),
        "configured": configured,
        "checks": checks,
    }


def test_preflight_go_for_two_18_nodes():
    rows = preflight([_fact("a"), _fact("b", checks={"checks": []})])
    assert all(r["go"] for r in rows), rows
    assert [r["check"] for r in rows] == [
        "a PostgreSQL",
        "a settings",
        "a origin",
        "b PostgreSQL",
        "b settings",
        "b origin",
    ]
    assert "does not exist yet" in rows[2]["detail"]
    assert rows[5]["detail"] == "no two-way replication without origin = none"


def test_preflight_refuses_17_naming_the_version():
    rows = preflight([_fact("a"), _fact("b", major=17)])
    [bad] = [r for r in rows if not r["go"]]
    assert bad["check"] == "b PostgreSQL"
    assert bad["detail"].startswith("PostgreSQL 17.1: conflict counters")
    assert "need PostgreSQL 18" in bad["detail"]
    assert bad["fix"]


def test_preflight_settings_off_and_pending():
    rows = preflight([_fact("a", settings=_settings(track="off")), _fact("b", settings=_settings(collector="off"))])
    bad = {r["check"]: r for r in rows if not r["go"]}
    assert bad["a settings"]["detail"] == "track_commit_timestamp off"
    assert bad["b settings"]["detail"] == "logging_collector off"
    assert "restart" in bad["a settings"]["fix"]
    pending = _settings(track="off", pending={"track_commit_timestamp": "on"})
    rows = preflight([_fact("a", settings=pending), _fact("b")])
    [bad] = [r for r in rows if not r["go"]]
    assert bad["detail"] == "track_commit_timestamp set but not in effect before a restart"


def test_preflight_says_when_it_wrote_the_settings():
    configured = {"changed": True}
    rows = preflight([_fact("a", settings=_settings(track="off"), configured=configured), _fact("b")])
    [bad] = [r for r in rows if not r["go"]]
    assert bad["detail"].endswith("now written with ALTER SYSTEM (server_settings), in effect after a restart")


def test_preflight_refuses_a_loop_and_an_unreachable_node():
    loop = {
        "checks": [
            {"code": "replication_loop_risk", "message": "risk", "hint": "h"},
            {"code": "replication_loop", "message": "two-way replication: ...", "hint": "Set origin: none"},
        ]
    }
    rows = preflight([_fact("a", checks=loop), _fact("b", server={"reachable": False, "error": "connection refused"})])
    bad = {r["check"]: r for r in rows if not r["go"]}
    assert bad["a origin"]["detail"] == "two-way replication: ..."
    assert bad["a origin"]["fix"] == "Set origin: none"
    assert bad["b PostgreSQL"]["detail"] == "cannot read the server: connection refused"
    assert "b settings" not in {r["check"] for r in rows}


# ------------------------------------------------------------------------------------------ observe


def test_observe_waits_for_the_counter_and_the_log_line_of_this_case():
    before = {"insert_exists": 3}
    text = _jsonlog((*OLD_INSERT_EXISTS, "10:00.000"))
    # The counter went up, but the log only has the first run's line (an older transaction): not seen yet.
    seen = observe(info({"insert_exists": 4}, log_text=text), SUB, {"insert_exists": 1}, before, "0/1B80000")
    assert seen["deltas"] == {"insert_exists": 1}
    assert seen["log"] == {}
    assert seen["seen"] is False
    text += _jsonlog((*INSERT_EXISTS, "20:08.300"), (*INSERT_EXISTS, "20:08.600"))
    seen = observe(info({"insert_exists": 5}, log_text=text), SUB, {"insert_exists": 1}, before, "0/1B80000")
    assert seen["seen"] is True
    entry = seen["log"]["insert_exists"]
    assert entry["finish_lsn"] == "0/1B88790"
    assert entry["severity"] == "ERROR"
    assert entry["count"] == 2
    assert entry["line"].startswith("ERROR: key (id)=(10): Key already exists in unique index")
    assert entry["line"].endswith("(2 times)")
    assert "peer18b" not in entry["line"]  # the rows are left out
    assert " at 2026" not in entry["line"]


def test_observe_without_the_counter_is_not_seen():
    text = _jsonlog((*UPDATE_ORIGIN_DIFFERS, "19:18.200"))
    seen = observe(info({}, log_text=text), SUB, {"update_origin_differs": 1}, {}, 0)
    assert seen["log"]["update_origin_differs"]["severity"] == "LOG"
    assert seen["seen"] is False
    seen = observe(info({"update_origin_differs": 1}, log_text=text), SUB, {"update_origin_differs": 1}, {}, 0)
    assert seen["seen"] is True


def test_observe_an_unreadable_log_goes_by_the_counters():
    seen = observe(info({"delete_missing": 1}, log_available=False), SUB, {"delete_missing": 1})
    assert seen["seen"] is True
    assert seen["log_available"] is False
    assert seen["log_source"] == "logging_collector is off"


def test_observe_stopped_and_errors():
    assert observe(info(workers=[{"pid": 1}]), SUB)["stopped"] is False
    assert observe(info(), SUB)["stopped"] is True
    with pytest.raises(ConflictsError, match="no subscription other"):
        observe(info(), "other")
    with pytest.raises(ConflictsError, match="PostgreSQL 18"):
        observe({"subscriptions": [{"name": SUB, "workers": []}]}, SUB)


def test_log_line_is_cut_to_its_width_keeping_the_key_and_count():
    line = log_line({"severity": "ERROR", "detail": "x" * 300, "key": "(id)=(1)", "count": 12}, width=60)
    assert len(line) == 60
    assert line.startswith("ERROR: key (id)=(1): xxx")
    assert line.endswith("... (12 times)")


# ------------------------------------------------------------------------------------------ report


def _record(case, host, role, before, after, log=None, **extra):
    return {
        "case": case,
        "host": host,
        "role": role,
        "before": before,
        "after": after,
        "log": log or {},
        "log_available": True,
        "log_source": "server log",
        "skip_lsn": None,
        "diverged_equal": None,
        "equal": True,
        **extra,
    }


def test_report_one_row_per_type_with_counters_log_resolution_and_equal():
    plan_cases = cases(winner="a", loser="b")
    chosen = [c for c in plan_cases if c["name"] in ("insert_exists", "update_missing")]
    line = {"line": "ERROR: key (id)=(10): Key already exists"}
    records = [
        _record(
            "insert_exists",
            "a",
            WINNER,
            {"insert_exists": 0},
            {"insert_exists": 7},
            {"insert_exists": line},
            skip_lsn="0/1B88790",
        ),
        _record("insert_exists", "b", LOSER, {"insert_exists": 0}, {"insert_exists": 6}, {"insert_exists": line}),
        _record(
            "update_missing",
            "a",
            WINNER,
            {"delete_origin_differs": 0},
            {"delete_origin_differs": 1},
            {"delete_origin_differs": {"line": "LOG: Deleting the row that was modified locally"}},
        ),
        _record("update_missing", "b", LOSER, {"update_missing": 2}, {"update_missing": 3}, equal=False),
    ]
    lines = report(records, chosen, ["a", "b"], final_equal=True)
    assert lines[0] == "| conflict | counter before->after | log line | resolution | equal |"
    assert lines[2].startswith("| insert_exists | a 0->7, b 0->6 | a: ERROR: key (id)=(10)")
    assert "a skipped b's transaction (skip_lsn 0/1B88790)" in lines[2]
    assert "then applied a's insert" in lines[2]
    assert lines[2].endswith("| yes |")
    assert lines[3].startswith("| delete_origin_differs | a 0->1, b 0->0 | a: LOG: Deleting")
    assert lines[4].startswith("| update_missing | a 0->0, b 2->3 | b: not found in the log |")
    assert lines[4].endswith("| NO |")
    assert lines[-1] == "pair a <-> b: equal in both directions (compare: counts and checksums)"
    assert report(records, chosen, ["a", "b"], final_equal=False)[-1] == "pair a <-> b: NOT EQUAL"
