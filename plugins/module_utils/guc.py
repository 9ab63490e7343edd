# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Server parameters (GUCs): parsing, comparison and change planning (pure Python).

PostgreSQL describes every parameter in ``pg_settings`` (type, unit, context, enum
values, range). :class:`Guc` uses that metadata to turn what a user wrote
(``'1GB'``, ``1024``, ``'5min'``, ``true``, ``'Logical'``) into a *canonical* value
exactly as the server would store it, so values compare unit-aware:

* ``integer`` -> ``int`` in the parameter's unit (``'1GB'`` for ``shared_buffers``
  (unit ``8kB``) -> ``131072``), rounding like PostgreSQL;
* ``real`` -> ``float`` in the parameter's unit;
* ``bool`` -> ``True``/``False`` (``on``/``off``/``true``/``yes``/``1`` and prefixes);
* ``enum`` -> the spelling from ``enumvals`` (case-insensitive; hidden aliases such
  as ``true`` for ``on`` and ``hot_standby`` for ``replica`` accepted);
* ``string`` -> ``str``; list parameters (``shared_preload_libraries``,
  ``search_path`` ...) -> tuple of elements.

:func:`plan` compares desired values with the running value *and* the configuration
files (``pg_file_settings``, including pending values in ``postgresql.auto.conf``)
and returns the ``ALTER SYSTEM`` actions that reach the desired state.
"""

from __future__ import annotations

import copy
import difflib
import re
from fractions import Fraction

# Units, largest first; sizes in bytes / microseconds.
MEMORY_UNITS = (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("kB", 1024), ("B", 1))
TIME_UNITS = (("d", 86400 * 10**6), ("h", 3600 * 10**6), ("min", 60 * 10**6), ("s", 10**6), ("ms", 1000), ("us", 1))
_UNIT_TABLES = {"memory": MEMORY_UNITS, "time": TIME_UNITS}
_VALID_UNITS_HINT = {
    "memory": 'Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".',
    "time": 'Valid units for this parameter are "us", "ms", "s", "min", "h", and "d".',
}

INT_MIN, INT_MAX = -(2**31), 2**31 - 1

RELOAD_CONTEXTS = frozenset(["sighup", "superuser", "user", "backend", "superuser-backend"])
"""Contexts whose file value takes effect on ``pg_reload_conf()`` (backend ones: for new sessions)."""
SESSION_RELOAD_CONTEXTS = frozenset(["sighup", "superuser", "user"])
"""Contexts whose reloaded file value also changes the value an existing session sees."""
RESTART_CONTEXTS = frozenset(["postmaster"])
"""Contexts whose file value takes effect only after a server restart."""
LOCKED_SOURCES = frozenset(["command line", "override"])
"""Sources that outrank the configuration files: ALTER SYSTEM cannot change such a value."""
SESSION_SOURCES = frozenset(["database", "user", "database user", "client", "session", "interactive", "global"])
"""Sources that override the server-wide value for our session only."""

LIST_QUOTE_GUCS = frozenset(
    [
        "shared_preload_libraries",
        "session_preload_libraries",
        "local_preload_libraries",
        "search_path",
        "temp_tablespaces",
    ]
)
"""List parameters whose elements PostgreSQL quotes individually (GUC_LIST_QUOTE)."""

_ENUM_ALIASES = {"wal_level": {"archive": "replica", "hot_standby": "replica"}}
_ENUM_BOOL_ALIASES = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}

AUTO_CONF = "postgresql.auto.conf"


class GucError(ValueError):
    """A value or name is invalid for the server; the message is meant for the user."""


def parse_bool(value):
    """Parse a boolean like PostgreSQL (``on/off``, ``true/false``, ``yes/no``, ``1/0`` and unique prefixes).

    Accepts Python ``bool`` and the integers 0/1. Returns ``True``/``False``, raises
    :class:`GucError` otherwise.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if not isinstance(value, str):
        raise GucError(f"expected a boolean, got {type(value).__name__} {value!r}")
    text = value.strip().lower()
    if text:
        if "true".startswith(text) or "yes".startswith(text) or text == "1":
            return True
        if "false".startswith(text) or "no".startswith(text) or text == "0":
            return False
        if len(text) >= 2 and "on".startswith(text):
            return True
        if len(text) >= 2 and "off".startswith(text):
            return False
    raise GucError(f"invalid boolean {value!r} (use on/off, true/false, yes/no or 1/0)")


def unit_info(unit):
    """Split a ``pg_settings.unit`` (``'8kB'``, ``'MB'``, ``'ms'``, ``'min'``) into ``(kind, size)``.

    ``kind`` is ``'memory'`` (size in bytes), ``'time'`` (size in microseconds) or
    ``None`` for unit-less (or unknown) units, with size 1.
    """
    if not unit:
        return None, 1
    match = re.match(r"^\s*(\d*)\s*([A-Za-z]+)\s*$", unit)
    if match:
        factor = int(match.group(1) or 1)
        for kind, table in _UNIT_TABLES.items():
            for name, size in table:
                if name == match.group(2):
                    return kind, factor * size
    return None, 1


_NUMBER_RE = re.compile(
    r"^\s*(?P<num>[+-]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))\s*(?P<unit>[A-Za-z]*)\s*$"
)


def _to_fraction(number_text, integer):
    """Parse the numeric part like strtol(base 0)/strtod: hex, octal (leading 0, integers) or decimal."""
    sign = -1 if number_text.startswith("-") else 1
    digits = number_text.lstrip("+-")
    if digits[:2].lower() == "0x":
        return sign * Fraction(int(digits[2:], 16))
    if integer and re.match(r"^0[0-7]+$", digits):
        return sign * Fraction(int(digits, 8))
    if integer and re.match(r"^0\d+$", digits):
        raise GucError(f"invalid integer {number_text!r}")
    return sign * Fraction(digits)


def _convert_units(number, unit_name, kind, param_size):
    """Convert ``number`` ``unit_name`` into multiples of the parameter's unit (PostgreSQL's rounding)."""
    table = _UNIT_TABLES[kind]
    names = [name for name, _size in table]
    if unit_name not in names:
        return None
    index = names.index(unit_name)
    value = number * Fraction(table[index][1], param_size)
    # Like PostgreSQL: round fractional input ("30.1GB") to the next smaller unit.
    if index + 1 < len(table):
        smaller = Fraction(table[index + 1][1], param_size)
        value = round(value / smaller) * smaller
    return value


def _format_number(value):
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.15g}"
    return str(value)


def split_list(text):
    """Split a list parameter (``'"$user", public'``) into elements; double quotes protect commas.

    Unquoted elements are stripped and taken literally; ``"..."`` elements are unquoted
    (``""`` inside is one ``"``). ``''`` is the empty list.
    """
    raw_elements = []
    buf = []
    in_quotes = False
    for char in text:
        if char == '"':
            in_quotes = not in_quotes
        if char == "," and not in_quotes:
            raw_elements.append("".join(buf))
            buf = []
        else:
            buf.append(char)
    if in_quotes:
        raise GucError(f"unterminated double quote in {text!r}")
    raw_elements.append("".join(buf))
    if len(raw_elements) == 1 and not raw_elements[0].strip():
        return ()
    elements = []
    for raw in raw_elements:
        raw = raw.strip()
        if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
            raw = raw[1:-1].replace('""', '"')
        elements.append(raw)
    return tuple(elements)


def quote_list_element(element):
    """Quote a list element the way PostgreSQL flattens GUC_LIST_QUOTE values (quote_ident rules)."""
    if re.match(r"^[a-z_][a-z0-9_]*$", element):
        return element
    return '"' + element.replace('"', '""') + '"'


class Guc:
    """One server parameter as described by a ``pg_settings`` row (a dict).

    Only ``name`` is required; missing metadata means "string parameter, user context"
    (used for custom ``prefix.name`` placeholders that are not defined yet).
    """

    def __init__(self, row):
        self.name = row["name"]
        self.vartype = row.get("vartype") or "string"
        self.unit = row.get("unit")
        self.context = row.get("context") or "user"
        self.enumvals = list(row.get("enumvals") or [])
        self.min_val = row.get("min_val")
        self.max_val = row.get("max_val")
        self.boot_val = row.get("boot_val")
        self.setting = row.get("setting")
        self.source = row.get("source") or "default"
        self.sourcefile = row.get("sourcefile")
        self.pending_restart = bool(row.get("pending_restart"))
        self.kind, self.unit_size = unit_info(self.unit)
        self.placeholder = bool(row.get("placeholder"))

    @property
    def is_list(self):
        """True for list parameters whose elements are quoted individually."""
        return self.name in LIST_QUOTE_GUCS

    # -- parsing -------------------------------------------------------------------------

    def parse(self, value, validate=True):
        """Return the canonical form of ``value`` (see the module docstring).

        With ``validate`` the value is checked against ``enumvals`` and
        ``min_val``/``max_val`` too. Raises :class:`GucError` with a user-facing message.
        """
        if value is None:
            raise GucError("a null value is not a setting (use the reset option to remove a setting)")
        if isinstance(value, (dict, set)):
            raise GucError(f"expected a scalar value, got a {type(value).__name__}")
        if isinstance(value, (list, tuple)) and not (self.vartype == "string" and self.is_list):
            raise GucError(f"expected a single {self.vartype} value, got a list")
        parser = getattr(self, "_parse_" + self.vartype, self._parse_string)
        return parser(value, validate)

    def _parse_bool(self, value, validate):
        if isinstance(value, float):
            raise GucError(f"expected a boolean, got float {value!r}")
        return parse_bool(value)

    def _number(self, value, integer):
        if isinstance(value, bool):
            raise GucError("expected {}, got boolean {!r}".format("an integer" if integer else "a number", value))
        if isinstance(value, (int, float)):
            return Fraction(value), ""
        if not isinstance(value, str):
            raise GucError(f"expected a number, got {type(value).__name__} {value!r}")
        match = _NUMBER_RE.match(value)
        if not match:
            raise GucError("invalid {} value {!r}".format("integer" if integer else "numeric", value))
        return _to_fraction(match.group("num"), integer), match.group("unit")

    def _scaled(self, value, integer):
        number, unit_name = self._number(value, integer)
        if unit_name:
            if self.kind is None:
                raise GucError(f"{value!r}: this parameter takes no unit")
            converted = _convert_units(number, unit_name, self.kind, self.unit_size)
            if converted is None:
                raise GucError(f"invalid unit {unit_name!r} in {value!r}. {_VALID_UNITS_HINT[self.kind]}")
            return converted
        return number

    def _range_text(self):
        if not self.unit:
            return f"{self.min_val} .. {self.max_val}"
        try:
            low, high = (self.display(self.parse(v, validate=False)) for v in (self.min_val, self.max_val))
        except GucError:
            return f"{self.min_val} .. {self.max_val} (unit {self.unit})"
        return f"{self.min_val} .. {self.max_val} (unit {self.unit}; {low} .. {high})"

    def _check_range(self, canonical, value, convert):
        if self.min_val is None or self.max_val is None:
            return
        low, high = convert(self.min_val), convert(self.max_val)
        if canonical < low or canonical > high:
            shown = str(value).strip()
            if self.unit and shown not in (_format_number(canonical), str(self.display(canonical))):
                shown = f"{shown} (= {_format_number(canonical)} x {self.unit})"
            raise GucError(f"{shown} is outside the valid range {self._range_text()}")

    def _parse_integer(self, value, validate):
        number = self._scaled(value, True)
        canonical = round(number)
        if canonical < INT_MIN or canonical > INT_MAX:
            raise GucError(f"{value!r} is outside the range of an integer parameter")
        if validate:
            self._check_range(canonical, value, lambda v: int(Fraction(v)))
        return canonical

    def _parse_real(self, value, validate):
        canonical = float(self._scaled(value, False))
        if validate:
            self._check_range(canonical, value, float)
        return canonical

    def _parse_enum(self, value, validate):
        if isinstance(value, bool):
            text = "on" if value else "off"
        elif isinstance(value, int) and value in (0, 1):
            text = str(value)
        elif isinstance(value, str):
            text = value.strip()
        else:
            raise GucError(
                "expected one of {}, got {} {!r}".format(", ".join(self.enumvals), type(value).__name__, value)
            )
        lowered = text.lower()
        for option in self.enumvals:
            if option.lower() == lowered:
                return option
        alias = _ENUM_ALIASES.get(self.name, {}).get(lowered)
        if alias is None and "on" in self.enumvals and "off" in self.enumvals:
            alias = _ENUM_BOOL_ALIASES.get(lowered)
        if alias is not None and (alias in self.enumvals or not self.enumvals):
            return alias
        if not self.enumvals:  # no metadata: keep the text
            return text
        raise GucError("invalid value {!r}; valid values are: {}".format(value, ", ".join(self.enumvals)))

    def _parse_string(self, value, validate):
        if isinstance(value, bool):
            raise GucError(f"expected a string, got boolean {value!r} (quote the value)")
        if self.is_list:
            if isinstance(value, (list, tuple)):
                elements = []
                for element in value:
                    if not isinstance(element, str) or not element:
                        raise GucError(f"list elements must be non-empty strings, got {element!r}")
                    elements.append(element)
                return tuple(elements)
            elements = split_list(str(value))
            if any(not element for element in elements):
                raise GucError(f"{value!r} has an empty list element")
            return elements
        if isinstance(value, float):
            return _format_number(value)
        return str(value)

    # -- output --------------------------------------------------------------------------

    def display(self, canonical):
        """Render a canonical value for results and for passing back as a setting (like ``SHOW``).

        Unit-less integers stay ``int`` and unit-less reals ``float``; values with units
        become strings such as ``'128MB'``/``'5min'`` (zero and negative values without
        unit, e.g. ``'-1'``); booleans ``'on'``/``'off'``; lists ``'a, "B c"'``.
        ``None`` stays ``None``; unparseable raw file values are returned as-is.
        """
        if canonical is None or isinstance(canonical, RawValue):
            return None if canonical is None else str(canonical)
        if self.vartype == "bool":
            return "on" if canonical else "off"
        if self.vartype in ("integer", "real"):
            if self.kind is None:
                return canonical
            if canonical <= 0:
                return _format_number(canonical)
            total = Fraction(canonical) * self.unit_size
            for name, size in _UNIT_TABLES[self.kind]:
                if size <= self.unit_size or (total / size).denominator == 1:
                    return _format_number(float(total / size) if self.vartype == "real" else int(total / size)) + name
        if isinstance(canonical, tuple):
            return ", ".join(quote_list_element(e) for e in canonical)
        return canonical

    def sql_values(self, canonical):
        """The literal(s) to write with ``ALTER SYSTEM SET name = ...`` (several for list parameters)."""
        if isinstance(canonical, tuple):
            if not canonical:
                # PostgreSQL would write '""' (one empty element); plan() resets instead.
                raise GucError(f"{self.name}: an empty list cannot be written with ALTER SYSTEM")
            return list(canonical)
        shown = self.display(canonical)
        return [_format_number(shown) if isinstance(shown, float) else str(shown)]

    def equal(self, left, right):
        """Compare two canonical values (reals with a relative tolerance of 1e-6, like SHOW's %g)."""
        if left is None or right is None:
            return left is right
        if isinstance(left, RawValue) or isinstance(right, RawValue):
            return False
        if self.vartype == "real" and isinstance(left, float) and isinstance(right, float):
            if left == right:
                return True
            return abs(left - right) <= 1e-6 * max(abs(left), abs(right))
        return left == right


class RawValue(str):
    """A value from a configuration file that the server metadata cannot parse (never equal to anything)."""


def _parse_loose(guc, text):
    if text is None:
        return None
    try:
        return guc.parse(text, validate=False)
    except GucError:
        return RawValue(text)


def group_file_settings(rows):
    """Group ``pg_file_settings`` rows by lower-cased name.

    Returns ``(by_name, problems)``: ``by_name[name] = {'last': setting, 'auto':
    setting or None, 'base': setting or None}`` (``last`` = the entry that wins, ``auto``
    = the last one from ``postgresql.auto.conf``, ``base`` = the last one from any other
    file) and ``problems`` = messages about file-level errors (rows without a name).
    Rows must be ordered by ``seqno``.
    """
    by_name = {}
    problems = []
    for row in rows:
        name = row.get("name")
        if not name:
            if row.get("error"):
                problems.append("{} line {}: {}".format(row.get("sourcefile"), row.get("sourceline"), row.get("error")))
            continue
        entry = by_name.setdefault(name.lower(), {"last": None, "auto": None, "base": None})
        entry["last"] = row.get("setting")
        if (row.get("sourcefile") or "").endswith("/" + AUTO_CONF) or row.get("sourcefile") == AUTO_CONF:
            entry["auto"] = row.get("setting")
        else:
            entry["base"] = row.get("setting")
    return by_name, problems


class SettingState:
    """Where one parameter stands: running value and what the configuration files will make of it.

    Attributes (canonical values): ``running`` (the value our session sees),
    ``server_running`` (best knowledge of the server-wide running value), ``auto``
    (``postgresql.auto.conf`` entry or ``None``), ``base`` (value without the
    ``auto.conf`` entry: last other file entry or the boot value), ``target`` (what a
    reload/restart will give: file value or boot value), ``locked`` (set on the command
    line: ALTER SYSTEM has no effect).
    """

    def __init__(self, guc, file_entry=None):
        self.guc = guc
        entry = file_entry or {"last": None, "auto": None, "base": None}
        self.running = _parse_loose(guc, guc.setting)
        self.boot = _parse_loose(guc, guc.boot_val)
        self.auto = _parse_loose(guc, entry["auto"])
        self.base_from_file = entry["base"] is not None
        self.base = _parse_loose(guc, entry["base"]) if self.base_from_file else self.boot
        self.source = guc.source
        self.locked = guc.source in LOCKED_SOURCES
        if self.locked:
            self.target = self.running
        elif entry["last"] is not None:
            self.target = _parse_loose(guc, entry["last"])
        elif guc.source in ("default", "environment variable") or guc.placeholder:
            # No file entry and not set from a file: what runs is the default.
            self.target = self.running
        else:
            self.target = self.boot
        if guc.source in SESSION_SOURCES:
            # The session's value hides the server-wide one; assume the files are applied.
            self.server_running = self.target
        else:
            self.server_running = self.running

    @property
    def pending(self):
        """Canonical value the next reload/restart will bring, or ``None`` when nothing is pending."""
        if self.guc.equal(self.target, self.server_running):
            return None
        return self.target

    def as_dict(self):
        """Result shape: running, pending, unit, context, source, pending_restart."""
        pending = self.pending
        return {
            "running": self.guc.display(self.running),
            "pending": self.guc.display(pending) if pending is not None else None,
            "unit": self.guc.unit,
            "context": self.guc.context,
            "source": self.source,
            "pending_restart": pending is not None and self.guc.context in RESTART_CONTEXTS,
        }


def pending_restart_names(gucs, file_rows, exclude=()):
    """Names PostgreSQL flags ``pending_restart`` whose file value really differs from the running one.

    PostgreSQL keeps the flag after a pending entry is removed from the files again (until the
    restart), so each flagged parameter is checked against the files.
    """
    files, _problems = group_file_settings(file_rows)
    names = []
    for name, guc in gucs.items():
        if guc.pending_restart and name not in exclude:
            if SettingState(guc, files.get(name)).pending is not None:
                names.append(name)
    return sorted(names)


def suggest(name, known_names, limit=3):
    """Return up to ``limit`` known parameter names close to ``name`` (difflib)."""
    return difflib.get_close_matches(name, list(known_names), n=limit, cutoff=0.6)


class Plan:
    """The outcome of :func:`plan`.

    ``errors``: user-facing validation messages (nothing may be written when not empty).
    ``actions``: list of ``(op, name, values)`` with ``op`` ``'set'`` (values = literal
    strings) or ``'reset'`` (values ``None``), in a stable order.
    ``reload``: ``pg_reload_conf()`` is needed. ``states``: name -> :class:`SettingState`
    before the run. ``desired``: name -> canonical desired value (for ``reset`` names:
    the value after the reset). ``previous``: name -> value that restores the state before
    the run (only for names the run changes in the files).
    """

    def __init__(self):
        self.errors = []
        self.actions = []
        self.reload = False
        self.states = {}
        self.desired = {}
        self.previous = {}

    @property
    def changed(self):
        return bool(self.actions) or self.reload


def _resolve(name, gucs, plan):
    """Look a name up (case-insensitively); unknown names become errors with suggestions."""
    if not isinstance(name, str) or not name.strip():
        plan.errors.append(f"invalid parameter name {name!r}")
        return None
    key = name.strip().lower()
    if key in gucs:
        return gucs[key]
    if "." in key and re.match(r"^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)+$", key):
        # A custom (extension) parameter that is not defined yet: PostgreSQL accepts it.
        return Guc({"name": key, "placeholder": True})
    hint = suggest(key, gucs.keys())
    msg = f"unknown parameter {name!r}"
    if hint:
        msg += "; did you mean: {}?".format(", ".join(hint))
    plan.errors.append(msg)
    return None


def _writable(raw_name, gucs, result, given_twice):
    """The parameter ``raw_name`` names when ALTER SYSTEM may write it, else ``None`` with the error noted."""
    guc = _resolve(raw_name, gucs, result)
    if guc is None:
        return None
    if guc.name in result.desired:
        result.errors.append(f"parameter {guc.name} {given_twice}")
        return None
    if guc.context == "internal":
        result.errors.append(f"{guc.name} is a read-only parameter (context internal)")
        return None
    return guc


def plan(gucs, file_rows, desired=None, reset=None):
    """Plan the ``ALTER SYSTEM`` statements that make the configuration match ``desired``.

    ``gucs``: name -> :class:`Guc` for every row of ``pg_settings``. ``file_rows``:
    ``pg_file_settings`` rows ordered by ``seqno``. ``desired``: name -> value as the
    user wrote it. ``reset``: names to remove from ``postgresql.auto.conf``.

    For each desired value the target (file value, pending or not) is compared first:
    if it differs, the setting is written (``RESET`` instead when the value without
    the ``auto.conf`` entry already is the desired one, e.g. to drop a pending
    ``wal_level`` change). A reloadable parameter whose running value differs from its
    target triggers a reload. Everything is validated before anything is planned.
    """
    result = Plan()
    desired = desired or {}
    reset = reset or []
    files, _problems = group_file_settings(file_rows)
    wanted = []
    for raw_name, value in desired.items():
        guc = _writable(raw_name, gucs, result, "is given twice")
        if guc is None:
            continue
        try:
            canonical = guc.parse(value)
        except GucError as exc:
            result.errors.append(f"{guc.name}: {exc}")
            continue
        state = SettingState(guc, files.get(guc.name))
        if canonical == () and not guc.equal(state.base, ()):
            result.errors.append(
                f"{guc.name}: ALTER SYSTEM cannot write an empty list, and without the postgresql.auto.conf entry "
                f"the value is {guc.display(state.base)!r} (from postgresql.conf or an included file); change it there"
            )
            continue
        if state.locked and not guc.equal(canonical, state.running):
            result.errors.append(
                f"{guc.name} is set with higher priority than the configuration files (source: {guc.source});"
                " ALTER SYSTEM cannot change it"
            )
            continue
        result.states[guc.name] = state
        result.desired[guc.name] = canonical
        wanted.append(guc.name)
    resets = []
    for raw_name in reset:
        guc = _writable(raw_name, gucs, result, "is both in settings and in reset")
        if guc is None:
            continue
        state = SettingState(guc, files.get(guc.name))
        result.states[guc.name] = state
        result.desired[guc.name] = state.base if state.auto is not None else state.target
        resets.append(guc.name)
    if result.errors:
        result.actions = []
        return result

    for name in wanted:
        state = result.states[name]
        guc = state.guc
        want = result.desired[name]
        if state.locked:
            continue
        if not guc.equal(state.target, want):
            if state.auto is not None and guc.equal(state.base, want):
                result.actions.append(("reset", name, None))
            else:
                result.actions.append(("set", name, guc.sql_values(want)))
            result.previous[name] = guc.display(state.target)
            if guc.context in RELOAD_CONTEXTS:
                result.reload = True
        elif guc.context in RELOAD_CONTEXTS and not guc.equal(state.server_running, want):
            result.reload = True  # the files already say so, a reload is all that is missing
    for name in resets:
        state = result.states[name]
        if state.auto is None:
            continue
        result.actions.append(("reset", name, None))
        result.previous[name] = state.guc.display(state.target)
        if state.guc.context in RELOAD_CONTEXTS and not state.guc.equal(state.server_running, state.base):
            result.reload = True
    allow = gucs.get("allow_alter_system")
    if result.actions and allow is not None and allow.setting == "off":
        result.errors.append(
            "ALTER SYSTEM is disabled on this server (allow_alter_system = off, set in postgresql.conf);"
            " the configuration is managed by other means"
        )
        result.actions = []
        result.previous = {}
    return result


def predict(state, desired, reloaded, action=None):
    """Predict the result dict of a parameter after the plan ran (check mode).

    ``desired`` is what the files will say, ``reloaded`` whether the configuration is
    reloaded, ``action`` the plan's ``'set'``/``'reset'`` for this parameter (or ``None``).
    """
    guc = state.guc
    after = copy.copy(state)
    after.target = desired
    if reloaded and guc.context in RELOAD_CONTEXTS:
        after.server_running = desired
        if guc.source not in SESSION_SOURCES:
            after.running = desired
            if action == "set" or (action == "reset" and state.base_from_file):
                after.source = "configuration file"
            elif action == "reset":
                after.source = "default"
    return after.as_dict()
