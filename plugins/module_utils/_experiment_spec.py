# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Experiment files (``experiments/<name>.yml``): schema, validation, variant resolution, the plan.

:func:`validate` checks a spec (the loaded YAML) against the measurement catalog
(``_experiment_catalog.CATALOG``), the workload steps (``_experiment_steps.STEPS``) and, when
given, the facts of the real nodes (``pg_settings`` and the version of the publisher and of each
subscriber node). Every problem is collected; :class:`SpecError` then names the file, the key
path (``variants[1].subscriber_settings.work_mem``) and the reason of each, so an experiment
fails before anything is changed. Otherwise it returns the plan the runner executes: the resolved
variants (each with its full step list, overrides applied, and the nodes it runs on), the
interleaved runs (A B C A B C ...) and the notes (variants impossible on a node and why).

Node facts (``facts``), as ``experiment_plan`` reads them::

    {"publisher": {"major": 15, "version": "15.10", "settings": {name: pg_settings row},
                   "publications": ["experiment_pub", ...], "tables": ["experiment.rows", ...]},
     "nodes": {"subscriber1": {"major": 15, "version": "15.10", "settings": {...}, "container": "subscriber1"}},
     "cores": 2}

Without facts only the file itself is checked (names, types, catalog, steps).
"""

from __future__ import annotations

import copy
import difflib
import os
import re

from ansible_collections.inventium.logical_replication.plugins.module_utils._experiment_catalog import CATALOG
from ansible_collections.inventium.logical_replication.plugins.module_utils._experiment_steps import (
    COMMON_PARAMS,
    STEPS,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._publication_plan import (
    GENERATED_COLUMNS_VALUES,
    TABLE_KEYS,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._subscription_plan import (
    ORIGIN_VALUES,
    STREAMING_VALUES,
    SYNC_COMMIT_VALUES,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    BINARY_COPY_MAJOR,
    GENERATED_COLUMNS_MAJOR,
    MIN_SERVER_MAJOR,
    PUBLISH_OPERATIONS,
    ROW_FILTER_MAJOR,
    STREAMING_PARALLEL_MAJOR,
    SUBSCRIPTION_OPTION_MAJORS,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.guc import Guc, GucError

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core depends on PyYAML
    yaml = None

DEFAULT_REPEAT = 3
BASELINES = ("copy",)
BASELINE_MEASURE = "baseline_copy_seconds"

TOP_KEYS = {
    "question": "the question the experiment answers, one sentence (required)",
    "nodes": "subscriber nodes to run on (default: every subscriber of the inventory)",
    "repeat": f"repetitions of every variant (default {DEFAULT_REPEAT}; -e experiment_repeat=N overrides)",
    "baseline": "`copy`: also measure the same tables copied by a plain COPY | COPY",
    "measure": "measure names from the catalog (required)",
    "workload": "the steps every variant runs, in order (required)",
    "variants": "the configurations compared (required, at least one)",
}
VARIANT_KEYS = {
    "name": "the variant's name (required, unique)",
    "subscription": "options of the subscription module, applied to each node's lab subscription",
    "publisher_settings": "server parameters (GUCs) on the publisher; reloadable ones only",
    "subscriber_settings": "server parameters (GUCs) on each node; reloadable ones only",
    "publication": "publication module options of experiment_pub, or {publication: options} for several",
    "limits": "container limits of each node: cpus (cores, e.g. 0.5), memory (e.g. 512m)",
    "subscriber_sql": "SQL statements run on each node before the workload",
    "requires": "subscriber_major / publisher_major: nodes below it do not run the variant (a note)",
    "workload": "per-step parameter overrides: {<step id>: {<parameter>: value}}",
}
REQUIRES_KEYS = ("subscriber_major", "publisher_major")
LIMIT_KEYS = ("cpus", "memory")
STEP_KEYS = ("step", "id")

NOT_RELOADABLE = {
    "postmaster": "takes effect only after a server restart (context postmaster)",
    "internal": "cannot be changed (context internal)",
}
"""``pg_settings.context`` values a variant cannot use: experiments reload, they never restart."""

NEW_SESSIONS_ONLY = ("backend", "superuser-backend")
"""Contexts a reload applies to new sessions only (a note, not an error)."""

SUBSCRIPTION_OPTIONS = {
    # option: (minimum major to change it on an existing subscription, values: "bool" or choices);
    # the majors are the core's ALTER SUBSCRIPTION ... SET gates, the choices the subscription planner's.
    "enabled": (MIN_SERVER_MAJOR, "bool"),
    "synchronous_commit": (SUBSCRIPTION_OPTION_MAJORS["synchronous_commit"][1], SYNC_COMMIT_VALUES),
    "binary": (SUBSCRIPTION_OPTION_MAJORS["binary"][1], "bool"),
    "streaming": (SUBSCRIPTION_OPTION_MAJORS["streaming"][1], STREAMING_VALUES),
    "two_phase": (SUBSCRIPTION_OPTION_MAJORS["two_phase"][1], "bool"),
    "disable_on_error": (SUBSCRIPTION_OPTION_MAJORS["disable_on_error"][1], "bool"),
    "origin": (SUBSCRIPTION_OPTION_MAJORS["origin"][1], ORIGIN_VALUES),
    "run_as_owner": (SUBSCRIPTION_OPTION_MAJORS["run_as_owner"][1], "bool"),
    "password_required": (SUBSCRIPTION_OPTION_MAJORS["password_required"][1], "bool"),
    "failover": (SUBSCRIPTION_OPTION_MAJORS["failover"][1], "bool"),
}
SUBSCRIPTION_VALUE_MAJORS = {("streaming", "parallel"): STREAMING_PARALLEL_MAJOR}
"""Values newer than their option: (option, value) -> minimum major."""
PUBLICATION_OPTIONS = {
    "publish": (MIN_SERVER_MAJOR, "publish"),
    "publish_via_partition_root": (MIN_SERVER_MAJOR, "bool"),
    "publish_generated_columns": (GENERATED_COLUMNS_MAJOR, GENERATED_COLUMNS_VALUES),
    "tables": (MIN_SERVER_MAJOR, "tables"),
}
PUBLISH_ACTIONS = PUBLISH_OPERATIONS
EXPERIMENT_PUBLICATION = "experiment_pub"
"""The publication a variant's ``publication`` options apply to when they do not name publications."""

_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
_MEMORY = re.compile(r"^[1-9][0-9]*[bkmg]?$", re.IGNORECASE)
_STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_DOCKER_MIN_MEMORY = 6 * 1024 * 1024


class SpecError(ValueError):
    """Invalid spec. ``errors``: ``[(key path, reason)]``; ``str()``: one line per error, naming the file."""

    def __init__(self, file, errors):
        self.file = file
        self.errors = list(errors)
        super().__init__(
            "\n".join(f"{file}: {path}: {reason}" if path else f"{file}: {reason}" for path, reason in errors)
        )


def _close(name, known):
    hint = difflib.get_close_matches(str(name), [str(k) for k in known], n=3, cutoff=0.6)
    return "; did you mean {}?".format(", ".join(hint)) if hint else ""


def _known(keys):
    return ", ".join(sorted(keys))


def _path(*parts):
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += "." + str(part)
        else:
            out = str(part)
    return out


def _bool(value):
    """YAML booleans and their words -> bool; anything else -> ValueError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    raise ValueError(f"expected a boolean, got {value!r}")


def _choice(value, choices):
    """One of ``choices``; YAML booleans (``off`` unquoted is ``false``) mean on/off where those are choices."""
    if isinstance(value, bool) and "on" in choices and "off" in choices:
        return "on" if value else "off"
    if isinstance(value, str):
        text = value.strip().lower()
        if text in choices:
            return text
        if text in _BOOL_WORDS and "on" in choices:
            return "on" if _BOOL_WORDS[text] else "off"
    raise ValueError("{!r} is not one of {}".format(value, ", ".join(choices)))


def _number(value, minimum=None, integer=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected {}, got {!r}".format("an integer" if integer else "a number", value))
    if integer and not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"must be at least {minimum}, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------- steps


def step_params(kind):
    """``{parameter: {"type", "default", "doc"}}`` of a step kind: its own plus the common ones (``id`` aside)."""
    params = {name: spec for name, spec in COMMON_PARAMS.items() if name not in STEP_KEYS}
    params.update(STEPS[kind].get("params") or {})
    return params


def check_param(value, spec):
    """Validate one step parameter against its ``STEPS`` spec; return the value (normalised) or raise ValueError."""
    kind = spec.get("type")
    choices = spec.get("choices")
    if value is None:
        if spec.get("nullable") or spec.get("default", 0) is None:
            return None
        raise ValueError("a value is required")
    # Every numeric step parameter is a count, a size, a rate or seconds: none is negative.
    if kind in ("int", "integer"):
        value = _number(value, spec.get("min", 0), integer=True)
    elif kind in ("float", "number", "real"):
        value = float(_number(value, spec.get("min", 0)))
    elif kind in ("bool", "boolean"):
        value = _bool(value)
    elif kind in ("str", "string"):
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
    elif kind == "list":
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {value!r}")
    elif kind == "dict":
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping, got {value!r}")
    if spec.get("max") is not None and isinstance(value, (int, float)) and value > spec["max"]:
        raise ValueError(f"must be at most {spec['max']}, got {value!r}")
    if choices and value not in choices:
        raise ValueError("{!r} is not one of {}".format(value, ", ".join(str(c) for c in choices)))
    return value


class _Checker:
    """Collects errors and notes while one spec is validated."""

    def __init__(self, file, facts):
        self.file = file
        self.facts = facts
        self.errors = []
        self.notes = []

    def error(self, path, reason):
        self.errors.append((path, reason))

    def mapping(self, value, path, known, required=()):
        """True when ``value`` is a mapping whose keys are all ``known`` (errors otherwise)."""
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {type(value).__name__} {value!r}")
            return False
        ok = True
        for key in value:
            if key not in known:
                self.error(_path(path, key), f"unknown key{_close(key, known)} (known: {_known(known)})")
                ok = False
        for key in required:
            if key not in value:
                self.error(_path(path, key), "is required")
                ok = False
        return ok

    # -- workload ------------------------------------------------------------------------

    def step(self, raw, path, ids):
        if not isinstance(raw, dict):
            self.error(path, f"a step must be a mapping with a `step` key, got {raw!r}")
            return None
        kind = raw.get("step")
        if kind not in STEPS:
            reason = "is required" if kind is None else f"unknown step {kind!r}{_close(kind, STEPS)}"
            self.error(_path(path, "step"), f"{reason} (steps: {_known(STEPS)})")
            return None
        params = step_params(kind)
        resolved = {"step": kind}
        step_id = raw.get("id")
        if step_id is not None:
            if not isinstance(step_id, str) or not _STEP_ID.match(step_id):
                self.error(_path(path, "id"), f"{step_id!r} is not a valid id (letters, digits, _ and -)")
            elif step_id in ids:
                self.error(_path(path, "id"), f"duplicate step id {step_id!r}")
            else:
                ids[step_id] = (kind, len(ids))
                resolved["id"] = step_id
        for key, value in raw.items():
            if key in STEP_KEYS:
                continue
            if key not in params:
                self.error(
                    _path(path, key),
                    f"unknown parameter of step {kind}{_close(key, params)} (parameters: {_known(params) or 'none'})",
                )
                continue
            try:
                resolved[key] = check_param(value, params[key])
            except ValueError as exc:
                self.error(_path(path, key), str(exc))
        for name, spec in params.items():
            if name in resolved:
                continue
            if spec.get("required"):
                self.error(_path(path, name), f"is required by step {kind}")
            else:
                resolved[name] = copy.deepcopy(spec.get("default"))
        return resolved

    def workload(self, raw):
        ids = {}
        steps = []
        if not isinstance(raw, list) or not raw:
            self.error("workload", "expected a non-empty list of steps")
            return steps, ids
        for index, item in enumerate(raw):
            resolved = self.step(item, _path("workload", index), ids)
            steps.append(resolved)
        return steps, ids

    def overrides(self, raw, path, steps, ids):
        """A copy of ``steps`` with ``raw`` ({step id: {parameter: value}}) applied."""
        out = copy.deepcopy(steps)
        if not isinstance(raw, dict):
            self.error(path, f"expected a mapping of step id to parameters, got {raw!r}")
            return out
        for step_id, params in raw.items():
            where = _path(path, step_id)
            if step_id not in ids:
                known = ", ".join(ids) or "none: give a workload step an `id` to override it"
                self.error(where, f"no workload step has id {step_id!r}{_close(step_id, ids)} (ids: {known})")
                continue
            kind = ids[step_id][0]
            target = next((s for s in out if s and s.get("id") == step_id), None)
            spec = step_params(kind)
            if not isinstance(params, dict):
                self.error(where, f"expected a mapping of parameters, got {params!r}")
                continue
            for key, value in params.items():
                if key not in spec:
                    self.error(
                        _path(where, key),
                        f"unknown parameter of step {kind}{_close(key, spec)} (parameters: {_known(spec) or 'none'})",
                    )
                    continue
                try:
                    value = check_param(value, spec[key])
                except ValueError as exc:
                    self.error(_path(where, key), str(exc))
                    continue
                if target is not None:
                    target[key] = value
        return out

    # -- server facts --------------------------------------------------------------------

    def settings(self, raw, path, targets):
        """Validate GUCs against each target's ``pg_settings``; return {name: value as given}."""
        if not isinstance(raw, dict) or not raw:
            self.error(path, f"expected a non-empty mapping of parameter to value, got {raw!r}")
            return {}
        out = {}
        for name, value in raw.items():
            where = _path(path, name)
            if not isinstance(name, str) or not name.strip():
                self.error(where, "invalid parameter name")
                continue
            out[name] = value
            for target, facts in targets:
                settings = facts.get("settings") or {}
                row = settings.get(name.lower())
                if row is None:
                    self.error(
                        where,
                        f"not a server parameter of {target} (PostgreSQL {facts.get('major')}, pg_settings)"
                        + _close(name.lower(), settings),
                    )
                    continue
                context = row.get("context")
                if context in NOT_RELOADABLE:
                    self.error(where, f"{name} {NOT_RELOADABLE[context]}; experiments only change reloadable settings")
                    continue
                if context in NEW_SESSIONS_ONLY:
                    note = (
                        f"{name} (context {context}) applies to new sessions only: on {target}, walsenders and"
                        " apply workers started before the change keep the old value"
                    )
                    if note not in self.notes:
                        self.notes.append(note)
                try:
                    Guc(row).parse(value)
                except GucError as exc:
                    self.error(where, f"invalid value for {target}: {exc}")
        return out

    def subscription(self, raw, path, nodes):
        if not isinstance(raw, dict) or not raw:
            self.error(path, f"expected a non-empty mapping of subscription option to value, got {raw!r}")
            return {}
        out = {}
        for option, value in raw.items():
            where = _path(path, option)
            if option not in SUBSCRIPTION_OPTIONS:
                self.error(
                    where,
                    f"not a subscription option that can be changed{_close(option, SUBSCRIPTION_OPTIONS)}"
                    f" (options: {_known(SUBSCRIPTION_OPTIONS)})",
                )
                continue
            minimum, values = SUBSCRIPTION_OPTIONS[option]
            try:
                value = _bool(value) if values == "bool" else _choice(value, values)
            except ValueError as exc:
                self.error(where, str(exc))
                continue
            out[option] = value
            need = max(minimum, SUBSCRIPTION_VALUE_MAJORS.get((option, value), 0))
            for node, facts in nodes:
                major = facts.get("major")
                if major is not None and major < need:
                    what = f"{option}: {value}" if need > minimum else option
                    self.error(
                        where,
                        f"{what} needs PostgreSQL {need}+ on the subscriber ({node} is {major}); "
                        f"add `requires: {{subscriber_major: {need}}}` to run this variant only where it exists",
                    )
        return out

    def publication(self, raw, path):
        """Options of the experiment publication, or ``{publication name: options}`` (every value a mapping)."""
        if not isinstance(raw, dict) or not raw:
            self.error(path, f"expected a non-empty mapping of publication option to value, got {raw!r}")
            return {}
        if all(isinstance(value, dict) for value in raw.values()):
            return {name: self.publication_options(options, _path(path, name), name) for name, options in raw.items()}
        return self.publication_options(raw, path, EXPERIMENT_PUBLICATION)

    def publication_options(self, raw, path, name):
        publisher = (self.facts or {}).get("publisher") or {}
        major = publisher.get("major")
        known = publisher.get("publications")
        if known is not None and name not in known:
            self.error(
                path,
                f"no publication {name!r} on the publisher{_close(name, known)}"
                f" (publications: {', '.join(sorted(known)) or 'none'})",
            )
        if not raw:
            self.error(path, "expected publication options")
        out = {}
        for option, value in raw.items():
            where = _path(path, option)
            if option not in PUBLICATION_OPTIONS:
                self.error(
                    where,
                    f"not a publication option{_close(option, PUBLICATION_OPTIONS)} ({_known(PUBLICATION_OPTIONS)})",
                )
                continue
            minimum, values = PUBLICATION_OPTIONS[option]
            try:
                if values == "bool":
                    value = _bool(value)
                elif values == "publish":
                    items = value.split(",") if isinstance(value, str) else value
                    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                        raise ValueError(f"expected a list of {', '.join(PUBLISH_ACTIONS)}, got {value!r}")
                    value = [i.strip().lower() for i in items]
                    bad = [i for i in value if i not in PUBLISH_ACTIONS]
                    if bad:
                        raise ValueError(f"{', '.join(bad)} not among {', '.join(PUBLISH_ACTIONS)}")
                elif values == "tables":
                    value = self.tables(value, where, major, publisher.get("tables"))
                else:
                    value = _choice(value, values)
            except ValueError as exc:
                self.error(where, str(exc))
                continue
            out[option] = value
            if major is not None and major < minimum:
                self.error(where, f"{option} needs PostgreSQL {minimum}+ on the publisher (publisher is {major})")
        return out

    def tables(self, value, path, major, existing):
        """A publication's ``tables``: names or {name, where, columns}; row filters and column lists need 15+."""
        if not isinstance(value, list):
            raise ValueError(f"expected a list of tables, got {value!r}")
        for index, table in enumerate(value):
            where = _path(path, index)
            entry = {"name": table} if isinstance(table, str) else table
            if not self.mapping(entry, where, TABLE_KEYS, required=("name",)):
                continue
            name = entry["name"]
            if not isinstance(name, str) or not name.strip():
                self.error(_path(where, "name"), f"expected a table name, got {name!r}")
                continue
            qualified = name.strip() if "." in name else "public." + name.strip()
            if existing is not None and '"' not in qualified and qualified.lower() not in existing:
                self.error(_path(where, "name"), f"no table {qualified} on the publisher{_close(qualified, existing)}")
            for key, kind in (("where", str), ("columns", list)):
                if key not in entry:
                    continue
                if not isinstance(entry[key], kind) or not entry[key]:
                    self.error(_path(where, key), f"expected a non-empty {kind.__name__}, got {entry[key]!r}")
                elif major is not None and major < ROW_FILTER_MAJOR:
                    what = "a row filter" if key == "where" else "a column list"
                    self.error(
                        _path(where, key),
                        f"{what} needs PostgreSQL {ROW_FILTER_MAJOR}+ on the publisher (publisher is {major})",
                    )
        return value

    def limits(self, raw, path, nodes):
        if not self.mapping(raw, path, LIMIT_KEYS) or not raw:
            if raw == {}:
                self.error(path, "expected cpus and/or memory")
            return {}
        out = {}
        if "cpus" in raw:
            try:
                out["cpus"] = float(_number(raw["cpus"]))
                if out["cpus"] <= 0:
                    raise ValueError(f"must be more than 0, got {raw['cpus']!r}")
                cores = (self.facts or {}).get("cores")
                if cores and out["cpus"] > cores:
                    raise ValueError(f"{raw['cpus']} is more than this machine's {cores} cores")
            except ValueError as exc:
                self.error(_path(path, "cpus"), str(exc))
        if "memory" in raw:
            memory = raw["memory"]
            text = str(memory) if isinstance(memory, (int, str)) and not isinstance(memory, bool) else ""
            if not _MEMORY.match(text):
                self.error(_path(path, "memory"), f"{memory!r} is not a size like 512m, 1g or 268435456 (bytes)")
            elif memory_bytes(text) < _DOCKER_MIN_MEMORY:
                self.error(_path(path, "memory"), f"{memory!r} is below Docker's minimum of 6m")
            else:
                out["memory"] = text.lower()
        for node, facts in nodes:
            if "container" in facts and not facts.get("container"):
                self.error(path, f"{node} is not a Docker container: container limits cannot be applied to it")
        return out


def memory_bytes(text):
    """Docker size (``512m``, ``1g``, ``268435456``) -> bytes."""
    text = str(text).strip().lower()
    factor = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1:], None)
    return int(text[:-1]) * factor if factor else int(text)


def _major_of(facts):
    return facts.get("major") if isinstance(facts, dict) else None


# ------------------------------------------------------------------------------------- validate


def validate(spec, file, facts=None, repeat=None, available_nodes=None):
    """Validate ``spec`` (the loaded YAML of ``file``) and return the plan; raise :class:`SpecError`.

    ``facts``: see the module docstring (``None``: only the file is checked). ``repeat``: an
    override of the spec's ``repeat`` (``-e experiment_repeat=N``). ``available_nodes``: the
    subscriber nodes that exist (default: those of ``facts``); the spec's ``nodes`` must be among them.
    """
    check = _Checker(file, facts)
    name = os.path.splitext(os.path.basename(str(file)))[0]
    if not isinstance(spec, dict):
        raise SpecError(file, [("", f"expected a mapping with the keys {_known(TOP_KEYS)}, got {type(spec).__name__}")])
    check.mapping(spec, "", TOP_KEYS, required=("question", "measure", "workload", "variants"))

    question = spec.get("question")
    if "question" in spec and (not isinstance(question, str) or not question.strip()):
        check.error("question", "expected one sentence (a non-empty string)")

    node_facts = (facts or {}).get("nodes") or {}
    if available_nodes is None:
        available_nodes = list(node_facts)
    nodes = spec.get("nodes")
    if nodes is None:
        nodes = list(available_nodes)
    elif not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) for n in nodes):
        check.error("nodes", f"expected a non-empty list of node names, got {nodes!r}")
        nodes = []
    else:
        for index, node in enumerate(nodes):
            if available_nodes and node not in available_nodes:
                check.error(
                    _path("nodes", index),
                    f"unknown node {node!r}{_close(node, available_nodes)} (subscribers: {', '.join(available_nodes)})",
                )
            if nodes.count(node) > 1 and nodes.index(node) == index:
                check.error(_path("nodes", index), f"{node} is listed twice")
        nodes = [n for i, n in enumerate(nodes) if nodes.index(n) == i]
    if facts is not None and not nodes:
        check.error("nodes", "no subscriber node to run on")

    if repeat is None:
        repeat = spec.get("repeat", DEFAULT_REPEAT)
        where = "repeat"
    else:
        where = "repeat (experiment_repeat)"
    try:
        repeat = _number(repeat, 1, integer=True)
    except ValueError as exc:
        check.error(where, str(exc))
        repeat = 1

    baseline = spec.get("baseline")
    if baseline is not None and baseline not in BASELINES:
        check.error("baseline", f"{baseline!r} is not one of {', '.join(BASELINES)}")

    measures = []
    raw_measures = spec.get("measure")
    if "measure" in spec and (not isinstance(raw_measures, list) or not raw_measures):
        check.error("measure", f"expected a non-empty list of measure names, got {raw_measures!r}")
    elif raw_measures:
        for index, measure in enumerate(raw_measures):
            if not isinstance(measure, str) or measure not in CATALOG:
                check.error(
                    _path("measure", index),
                    f"unknown measure {measure!r}{_close(measure, CATALOG)} (catalog: {_known(CATALOG)})",
                )
            elif measure in measures:
                check.error(_path("measure", index), f"{measure} is listed twice")
            else:
                measures.append(measure)
    if baseline == "copy" and BASELINE_MEASURE not in measures:
        measures.append(BASELINE_MEASURE)

    steps, ids = check.workload(spec.get("workload")) if "workload" in spec else ([], {})

    publisher = (facts or {}).get("publisher")
    variants = []
    raw_variants = spec.get("variants")
    if "variants" in spec and (not isinstance(raw_variants, list) or not raw_variants):
        check.error("variants", "expected a non-empty list of variants")
        raw_variants = []
    seen = set()
    for index, raw in enumerate(raw_variants or []):
        path = _path("variants", index)
        if not check.mapping(raw, path, VARIANT_KEYS, required=("name",)) and not isinstance(raw, dict):
            continue
        vname = raw.get("name")
        if isinstance(vname, bool):
            check.error(_path(path, "name"), f"YAML reads this name as the boolean {vname}: quote it")
            vname = None
        elif "name" in raw and (not isinstance(vname, (str, int, float)) or not str(vname).strip()):
            check.error(_path(path, "name"), f"expected a non-empty string, got {vname!r}")
            vname = None
        if vname is not None:
            vname = str(vname)
            if vname in seen:
                check.error(_path(path, "name"), f"duplicate variant name {vname!r}")
            seen.add(vname)
        variant = _variant(check, raw, path, vname, steps, ids, nodes, node_facts, publisher)
        variants.append(variant)

    if check.errors:
        raise SpecError(file, check.errors)

    runnable = [v for v in variants if v["nodes"] or facts is None]
    if not runnable:
        raise SpecError(file, [("variants", "no variant can run on any node: " + "; ".join(check.notes))])
    runs = []
    total = repeat * len(runnable)
    for repetition in range(1, repeat + 1):
        for variant in runnable:
            runs.append({"index": len(runs) + 1, "total": total, "repetition": repetition, "variant": variant["name"]})
    return {
        "name": name,
        "file": str(file),
        "question": question.strip(),
        "repeat": repeat,
        "nodes": nodes,
        "measures": measures,
        "measure_info": {m: {k: v for k, v in CATALOG[m].items() if k != "source"} for m in measures},
        "baseline": baseline,
        "variants": variants,
        "runs": runs,
        "notes": check.notes,
    }


def _variant(check, raw, path, vname, steps, ids, nodes, node_facts, publisher):
    """Resolve one variant: which nodes run it (``requires``), validated options, its step list."""
    requires = {}
    if "requires" in raw and check.mapping(raw["requires"], _path(path, "requires"), REQUIRES_KEYS):
        for key, value in raw["requires"].items():
            try:
                requires[key] = _number(value, 10, integer=True)
            except ValueError as exc:
                check.error(_path(path, "requires", key), str(exc))
    running = []
    for node in nodes:
        facts = node_facts.get(node) or {}
        major = _major_of(facts)
        if major is not None and major < requires.get("subscriber_major", 0):
            check.notes.append(
                f"variant {vname} does not run on {node}: it requires subscriber_major"
                f" {requires['subscriber_major']} and {node} is PostgreSQL {major}"
            )
            continue
        running.append(node)
    pub_major = _major_of(publisher or {})
    if pub_major is not None and pub_major < requires.get("publisher_major", 0):
        check.notes.append(
            f"variant {vname} does not run at all: it requires publisher_major {requires['publisher_major']}"
            f" and the publisher is PostgreSQL {pub_major}"
        )
        running = []
    targets = [(n, node_facts[n]) for n in running if n in node_facts]

    variant = {
        "name": vname,
        "subscription": {},
        "publisher_settings": {},
        "subscriber_settings": {},
        "publication": {},
        "limits": {},
        "subscriber_sql": [],
        "requires": requires,
        "nodes": running,
    }
    if "subscription" in raw:
        variant["subscription"] = check.subscription(raw["subscription"], _path(path, "subscription"), targets)
    if "publisher_settings" in raw:
        pub = [("the publisher", publisher)] if publisher else []
        variant["publisher_settings"] = check.settings(
            raw["publisher_settings"], _path(path, "publisher_settings"), pub
        )
    if "subscriber_settings" in raw:
        variant["subscriber_settings"] = check.settings(
            raw["subscriber_settings"], _path(path, "subscriber_settings"), targets
        )
    if "publication" in raw:
        variant["publication"] = check.publication(raw["publication"], _path(path, "publication"))
    if "limits" in raw:
        variant["limits"] = check.limits(raw["limits"], _path(path, "limits"), targets)
    if "subscriber_sql" in raw:
        sql_list = raw["subscriber_sql"]
        if not isinstance(sql_list, list) or not all(isinstance(s, str) and s.strip() for s in sql_list):
            check.error(_path(path, "subscriber_sql"), f"expected a list of SQL statements (strings), got {sql_list!r}")
        else:
            variant["subscriber_sql"] = list(sql_list)
    if "workload" in raw:
        variant["steps"] = check.overrides(raw["workload"], _path(path, "workload"), steps, ids)
    else:
        variant["steps"] = copy.deepcopy(steps)
    if variant["subscription"].get("binary") is True and pub_major is not None:
        for node, facts in targets:
            low = min(pub_major, _major_of(facts) or pub_major)
            if low < BINARY_COPY_MAJOR:
                check.notes.append(
                    f"variant {vname} on {node}: the initial table copy stays in text format (a binary COPY needs"
                    f" publisher and subscriber on PostgreSQL {BINARY_COPY_MAJOR}+; the publisher is {pub_major},"
                    f" {node} is {_major_of(facts)}), so binary only changes how streamed changes are sent"
                )
    return variant


# ---------------------------------------------------------------------------------------- files


class _UniqueKeyLoader(getattr(yaml, "SafeLoader", object)):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML silently keeps the last)."""


def _construct_mapping(loader, node, deep=False):
    keys = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        keys.add(key)
    return loader.construct_mapping(node, deep=deep)


if yaml is not None:
    _UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_text(text, file):
    """Parse the YAML text of a spec file; a syntax error or a duplicate key is a :class:`SpecError`."""
    if yaml is None:  # pragma: no cover
        raise SpecError(file, [("", "PyYAML is required to read experiment files")])
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise SpecError(file, [("", "not valid YAML: " + " ".join(str(exc).split()))]) from None


def load_file(path, display=None):
    """Read and parse a spec file (``display``: the name used in messages, default ``path``)."""
    display = display or path
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise SpecError(display, [("", f"cannot read the file: {exc.strerror or exc}")]) from None
    return load_text(text, display)
