# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The publication planner: desired definition vs the publication -> statements, and their run.

The ``publication`` module's logic. It reads through ``_publications.py`` (the only SQL reading
``pg_publication*``, and the replica identity rule).
"""

from __future__ import annotations

import copy
import secrets

from ansible_collections.inventium.logical_replication.plugins.module_utils._publications import (
    MISSING_SCHEMAS_QUERY,
    MISSING_TABLES_QUERY,
    column_list_problems,
    no_replica_identity_query,
    read_publication,
    read_schemas,
    read_tables,
    table_display,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    COLUMN_LIST_MAJOR,
    GENERATED_COLUMNS_MAJOR,
    PUBLISH_OPERATIONS,
    ROW_FILTER_MAJOR,
    SCHEMAS_MAJOR,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    format_db_error,
    psycopg,
    sql,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (
    IdentifierError,
    ident,
    parse_identifier,
    parse_qualified_name,
    quote_ident,
    unique_names,
)

GENERATED_COLUMNS_VALUES = ("none", "stored")


TABLE_KEYS = ("name", "columns", "where")


MAX_LISTED_TABLES = 20


class OptionError(ValueError):
    """Invalid module input; ``str()`` names the offending option and value."""


def normalize_publish(values):
    """Return the operations of ``publish`` as a tuple in PostgreSQL's canonical order.

    Elements may themselves be comma-separated; white space, case and duplicates do not
    matter. ``None`` stays ``None`` (not managed); an empty list is an empty tuple.
    """
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    expected = ", ".join(PUBLISH_OPERATIONS)
    wanted = set()
    for value in values:
        if not isinstance(value, str):
            raise OptionError(f"publish: {value!r} is not an operation name (expected any of {expected})")
        for part in value.split(","):
            op = part.strip().lower()
            if not op:
                continue
            if op not in PUBLISH_OPERATIONS:
                raise OptionError(f"publish: unknown operation {part.strip()!r} (expected any of {expected})")
            wanted.add(op)
    return tuple(op for op in PUBLISH_OPERATIONS if op in wanted)


class TableSpec:
    """One desired entry of ``tables``: a qualified name, an optional column list and row filter."""

    __slots__ = ("columns", "index", "qname", "where")

    def __init__(self, qname, columns=None, where=None, index=0):
        self.qname = qname
        self.columns = tuple(columns) if columns is not None else None
        self.where = where
        self.index = index

    @property
    def key(self):
        return (self.qname.schema, self.qname.name)

    @property
    def option(self):
        return f"tables[{self.index}]"

    @property
    def label(self):
        return f"{self.option} ({self.qname})"

    def __repr__(self):
        return f"TableSpec({tuple(self.qname)!r}, columns={self.columns!r}, where={self.where!r})"

    def __eq__(self, other):
        if not isinstance(other, TableSpec):
            return NotImplemented
        return (self.qname, self.columns, self.where) == (other.qname, other.columns, other.where)

    def __hash__(self):
        return hash((self.qname, self.columns, self.where))


def _parse_name(text, option, qualified=False):
    if not isinstance(text, str):
        raise OptionError(f"{option}: expected a name (string), got {type(text).__name__} {text!r}")
    try:
        return parse_qualified_name(text) if qualified else parse_identifier(text)
    except IdentifierError as exc:
        raise OptionError(f"{option}: invalid name {text!r}: {exc}") from None


def _parse_columns(raw, option):
    if isinstance(raw, str) or not isinstance(raw, list):
        raise OptionError(f"{option}: expected a list of column names, got {type(raw).__name__} {raw!r}")
    if not raw:
        raise OptionError(f"{option}: the column list must not be empty (leave it out to publish all columns)")
    return unique_names(raw, option, "column", _parse_name, OptionError, indexed=False)


def parse_tables(entries):
    """Parse the ``tables`` option into a list of :class:`TableSpec` (``None`` stays ``None``)."""
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise OptionError(f"tables: expected a list, got {type(entries).__name__}")
    specs = []
    seen = {}
    for index, entry in enumerate(entries):
        option = f"tables[{index}]"
        columns = where = None
        if isinstance(entry, dict):
            unknown = sorted(str(k) for k in entry if k not in TABLE_KEYS)
            if unknown:
                raise OptionError(f"{option}: unknown key(s) {', '.join(unknown)} (expected {', '.join(TABLE_KEYS)})")
            if entry.get("name") in (None, ""):
                raise OptionError(f"{option}: the key 'name' is required")
            qname = _parse_name(entry["name"], option + ".name", qualified=True)
            if entry.get("columns") is not None:
                columns = _parse_columns(entry["columns"], option + ".columns")
            raw_where = entry.get("where")
            if raw_where is not None:
                if not isinstance(raw_where, str):
                    raise OptionError(
                        f"{option}.where: expected an SQL expression (string), "
                        f"got {type(raw_where).__name__} {raw_where!r}"
                    )
                where = raw_where.strip() or None
        elif isinstance(entry, str):
            qname = _parse_name(entry, option, qualified=True)
        else:
            raise OptionError(
                f"{option}: expected a table name or a dict with name/columns/where, "
                f"got {type(entry).__name__} {entry!r}"
            )
        spec = TableSpec(qname, columns, where, index)
        if spec.key in seen:
            raise OptionError(f"{option}: table {qname} is already listed as tables[{seen[spec.key]}]")
        seen[spec.key] = index
        specs.append(spec)
    return specs


def parse_schemas(values):
    """Parse ``schemas`` into a sorted tuple of exact schema names (``None`` stays ``None``)."""
    if values is None:
        return None
    return tuple(sorted(unique_names(values, "schemas", "schema", _parse_name, OptionError)))


class Desired:
    """The validated, parsed module options (no database access)."""

    def __init__(self, params):
        self.name = _parse_name(params["name"], "name")
        self.state = params.get("state") or "present"
        self.all_tables = params.get("all_tables")
        self.tables = parse_tables(params.get("tables"))
        self.schemas = parse_schemas(params.get("schemas"))
        self.publish = normalize_publish(params.get("publish"))
        self.via_root = params.get("publish_via_partition_root")
        self.gencols = params.get("publish_generated_columns")
        if self.gencols is not None and self.gencols not in GENERATED_COLUMNS_VALUES:
            raise OptionError(
                f"publish_generated_columns: {self.gencols!r} is not one of {', '.join(GENERATED_COLUMNS_VALUES)}"
            )
        owner = params.get("owner")
        self.owner = _parse_name(owner, "owner") if owner not in (None, "") else None
        self.comment = params.get("comment")
        if self.all_tables:
            if self.tables:
                raise OptionError(
                    "all_tables: true conflicts with tables (a FOR ALL TABLES publication has no table list)"
                )
            if self.schemas:
                raise OptionError(
                    "all_tables: true conflicts with schemas (a FOR ALL TABLES publication has no schemas)"
                )

    @property
    def manages_list(self):
        """True when the explicit table/schema list is managed (tables or schemas given)."""
        return self.tables is not None or self.schemas is not None

    @property
    def wanted_all_tables(self):
        """Desired ``puballtables``; ``None`` when the kind is not managed."""
        if self.all_tables is not None:
            return bool(self.all_tables)
        if self.manages_list:
            return False
        return None

    @property
    def comment_managed(self):
        return self.comment is not None

    @property
    def wanted_comment(self):
        """Desired comment; ``''`` means none (``None``)."""
        return self.comment if self.comment else None


def version_problems(desired, major):
    """Return ``[(option, min_major, reason)]`` for features ``desired`` uses that ``major`` lacks."""
    problems = []
    for spec in desired.tables or ():
        if spec.where is not None and major < ROW_FILTER_MAJOR:
            problems.append((spec.option + ".where", ROW_FILTER_MAJOR, "row filters need it"))
        if spec.columns is not None and major < COLUMN_LIST_MAJOR:
            problems.append((spec.option + ".columns", COLUMN_LIST_MAJOR, "column lists need it"))
    if desired.schemas and major < SCHEMAS_MAJOR:
        problems.append(("schemas", SCHEMAS_MAJOR, "TABLES IN SCHEMA needs it"))
    if desired.gencols is not None and major < GENERATED_COLUMNS_MAJOR:
        problems.append(("publish_generated_columns", GENERATED_COLUMNS_MAJOR, None))
    return problems


def diff_tables(current, desired):
    """Compare two lists of table state dicts.

    Returns ``(added, removed, changed)``, lists of display names sorted by schema and table;
    ``changed`` are tables in both lists whose column list or row filter differ.
    """
    cur = {(t["schema"], t["table"]): t for t in current}
    des = {(t["schema"], t["table"]): t for t in desired}
    added = [des[k]["name"] for k in sorted(set(des) - set(cur))]
    removed = [cur[k]["name"] for k in sorted(set(cur) - set(des))]
    changed = [
        des[k]["name"]
        for k in sorted(set(cur) & set(des))
        if (cur[k]["columns"], cur[k]["where"]) != (des[k]["columns"], des[k]["where"])
    ]
    return added, removed, changed


def _column_list_sql(columns):
    return sql.SQL(" ({})").format(sql.SQL(", ").join(ident(c) for c in columns))


def table_entry_sql(spec):
    """``"schema"."table" [(columns)] [WHERE (expr)]`` for a desired entry."""
    parts = [spec.qname.identifier()]
    if spec.columns is not None:
        parts.append(_column_list_sql(spec.columns))
    if spec.where is not None:
        # A row filter is an SQL expression by nature. Before it is used in a change, PostgreSQL
        # validates it in a throwaway publication over the extended query protocol (one statement).
        parts.append(sql.SQL(" WHERE ({})").format(sql.SQL(spec.where)))
    return sql.Composed(parts)


def stored_entry_sql(table):
    """``ONLY "schema"."table" [(columns)] [WHERE (expr)]`` re-creating a stored entry exactly."""
    parts = [sql.SQL("ONLY "), ident(table["schema"], table["table"])]
    if table["columns"] is not None:
        parts.append(_column_list_sql(table["columns"]))
    if table["where"] is not None:
        parts.append(sql.SQL(" WHERE ({})").format(sql.SQL(table["where"])))
    return sql.Composed(parts)


def objects_sql(table_sqls, schemas):
    """``TABLE a, b, TABLES IN SCHEMA x, y``, ``None`` when both are empty."""
    parts = []
    if table_sqls:
        parts.append(sql.SQL("TABLE {}").format(sql.SQL(", ").join(table_sqls)))
    if schemas:
        parts.append(sql.SQL("TABLES IN SCHEMA {}").format(sql.SQL(", ").join(ident(s) for s in schemas)))
    if not parts:
        return None
    return sql.SQL(", ").join(parts)


def options_sql(options):
    """``publish = '...', publish_via_partition_root = true, ...`` from a dict of options."""
    items = []
    for key, value in options.items():
        if key == "publish":
            value = ", ".join(value)
        items.append(sql.SQL("{} = {}").format(sql.SQL(key), sql.Literal(value)))
    return sql.SQL(", ").join(items)


def create_sql(name, all_tables, objects, options):
    """``CREATE PUBLICATION name [FOR ALL TABLES | FOR objects] [WITH (options)]``."""
    statement = sql.SQL("CREATE PUBLICATION {}").format(ident(name))
    if all_tables:
        statement += sql.SQL(" FOR ALL TABLES")
    elif objects is not None:
        statement += sql.SQL(" FOR {}").format(objects)
    if options:
        statement += sql.SQL(" WITH ({})").format(options_sql(options))
    return statement


def option_changes(current, desired, major):
    """Options whose desired value differs from ``current`` (a state dict), in a fixed order."""
    changes = {}
    if desired.publish is not None and tuple(current["publish"]) != desired.publish:
        changes["publish"] = desired.publish
    if desired.via_root is not None and current["publish_via_partition_root"] != desired.via_root:
        changes["publish_via_partition_root"] = desired.via_root
    if (
        desired.gencols is not None
        and major >= GENERATED_COLUMNS_MAJOR
        and current.get("publish_generated_columns") != desired.gencols
    ):
        changes["publish_generated_columns"] = desired.gencols
    return changes


def create_options(target):
    """WITH options for CREATE PUBLICATION reaching ``target``; PostgreSQL's defaults are left out."""
    options = {}
    if tuple(target["publish"]) != PUBLISH_OPERATIONS:
        options["publish"] = tuple(target["publish"])
    if target["publish_via_partition_root"]:
        options["publish_via_partition_root"] = True
    if target.get("publish_generated_columns") not in (None, "none"):
        options["publish_generated_columns"] = target["publish_generated_columns"]
    return options


def public_state(state):
    """A copy of a state dict without the module's internal (``_``-prefixed) keys; ``{}`` for ``None``."""
    if not state:
        return {}
    result = {k: copy.deepcopy(v) for k, v in state.items() if not k.startswith("_")}
    result["tables"] = [{k: copy.deepcopy(v) for k, v in t.items() if not k.startswith("_")} for t in state["tables"]]
    return result


SESSION_QUERY = (
    "SELECT current_user::text AS current_user, current_database()::text AS database,"
    " current_setting('wal_level') AS wal_level"
)


class PublicationModule:
    """One publication: read state -> (server-side normalisation) -> diff (:meth:`prepare`) -> apply -> report.

    :meth:`prepare` checks and plans without writing, :meth:`apply` writes and returns the per-object
    result; the single form is :meth:`run`, the list form (``publications``) prepares every item
    before applying any, in one transaction (``_object_list.run_items``), sharing ``session``.
    """

    def __init__(self, m, desired, session=None):
        self.m = m
        self.desired = desired
        self.major = m.server_major
        self.session = session

    def run_query(self, statement, params=None):
        return self.m.query(statement, params)

    @property
    def display_name(self):
        return quote_ident(self.desired.name)

    # -- validation against the server ----------------------------------------------------------

    def check_versions(self):
        self.m.require_versions("publication module", version_problems(self.desired, self.major))

    def check_objects_exist(self):
        d = self.desired
        database = self.session["database"]
        if d.tables:
            rows = self.run_query(
                MISSING_TABLES_QUERY, [[s.qname.schema for s in d.tables], [s.qname.name for s in d.tables]]
            )
            if rows:
                missing = [table_display(r["schema"], r["name"]) for r in rows]
                what = "this table does" if len(missing) == 1 else f"these {len(missing)} tables do"
                self.m.fail(
                    f"tables: {what} not exist in database {quote_ident(database)}: {', '.join(missing)}; "
                    "nothing was changed",
                    missing_tables=missing,
                )
        if d.schemas:
            rows = self.run_query(MISSING_SCHEMAS_QUERY, [list(d.schemas)])
            if rows:
                missing = [r["name"] for r in rows]
                what = "this schema does" if len(missing) == 1 else f"these {len(missing)} schemas do"
                self.m.fail(
                    f"schemas: {what} not exist in database {quote_ident(database)}: "
                    f"{', '.join(quote_ident(s) for s in missing)}; nothing was changed",
                    missing_schemas=missing,
                )
        role_query = "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s"
        if d.owner is not None and not self.run_query(role_query, [d.owner]):
            self.m.fail(f"owner: role {quote_ident(d.owner)} does not exist")

    # -- normalisation by the server ------------------------------------------------------------

    def probe(self, entries, schemas, via_root, gencols):
        """Let PostgreSQL validate and store the desired list in a throwaway publication.

        ``entries`` are ``(label, composable)`` table entries. The throwaway publication lives in a
        transaction of its own that is rolled back, so nothing is left behind (in check mode too).
        Returns ``(tables, schemas)`` as PostgreSQL stored them. Fails the module, naming the entry
        PostgreSQL rejects where possible, with PostgreSQL's error and SQLSTATE.
        """
        name = f"inventium_probe_{secrets.token_hex(8)}"
        options = {}
        if via_root:
            options["publish_via_partition_root"] = True
        if gencols not in (None, "none") and self.major >= GENERATED_COLUMNS_MAJOR:
            options["publish_generated_columns"] = gencols
        if self.m.in_transaction:
            self.m.fail("internal error: the publication must be validated before any change")
        conn = self.m.conn

        def attempt(items, with_schemas):
            statement = create_sql(name, False, objects_sql([entry for _label, entry in items], with_schemas), options)
            conn.execute("BEGIN")
            try:
                with conn.cursor() as cur:

                    def run(stmt, params=None):
                        cur.execute(stmt, params)
                        return cur.fetchall()

                    # binary=True forces the extended query protocol, which runs exactly one statement.
                    cur.execute(statement, binary=True)
                    pub_oid = run("SELECT oid FROM pg_catalog.pg_publication WHERE pubname = %s", [name])[0]["oid"]
                    return read_tables(run, pub_oid, self.major), read_schemas(run, pub_oid, self.major)
            finally:
                conn.execute("ROLLBACK")

        try:
            return attempt(entries, schemas)
        except psycopg.Error as exc:
            error = exc
        culprit = None
        if len(entries) + len(schemas) > 1:
            for label, entry in entries:
                try:
                    attempt([(label, entry)], ())
                except psycopg.Error as exc:
                    culprit, error = label, exc
                    break
        action = f"PostgreSQL rejects the desired definition of publication {self.display_name}"
        if culprit:
            action += f", {culprit}"
        # PostgreSQL names the throwaway publication in some messages: name the real one instead.
        message = format_db_error(error, (), action).replace(quote_ident(name), self.display_name)
        self.m.fail(message.replace(name, self.desired.name), sqlstate=error.sqlstate)

    def final_list(self, current):
        """``(entries, tables, schemas)`` of the final explicit list.

        ``entries`` are the ``(label, composable)`` table entries for CREATE/SET; ``tables`` and
        ``schemas`` are what PostgreSQL stores for them (validated by :meth:`probe`).
        """
        d = self.desired
        current_explicit = current is not None and not current["all_tables"]
        if d.tables is not None:
            entries = [(s.label, table_entry_sql(s)) for s in d.tables]
        elif current_explicit:
            entries = [(f"table {t['name']}", stored_entry_sql(t)) for t in current["tables"]]
        else:
            entries = []
        if d.schemas is not None:
            schemas = list(d.schemas)
        else:
            schemas = list(current["schemas"]) if current_explicit else []
        if current_explicit and not d.manages_list:
            return entries, current["tables"], schemas
        if not entries and not schemas:
            return entries, [], []
        via_root = d.via_root if d.via_root is not None else (current or {}).get("publish_via_partition_root")
        gencols = d.gencols if d.gencols is not None else (current or {}).get("publish_generated_columns")
        tables, stored_schemas = self.probe(entries, schemas, via_root, gencols)
        return entries, tables, stored_schemas

    # -- planning -------------------------------------------------------------------------------

    def new_state(self):
        """State of a publication created now with PostgreSQL's defaults."""
        state = {
            "name": self.desired.name,
            "owner": self.session["current_user"],
            "all_tables": False,
            "tables": [],
            "schemas": [],
            "publish": list(PUBLISH_OPERATIONS),
            "publish_via_partition_root": False,
            "comment": None,
        }
        if self.major >= GENERATED_COLUMNS_MAJOR:
            state["publish_generated_columns"] = "none"
        return state

    def target_state(self, current, final_all, tables, schemas):
        """The state the publication must have after the run."""
        d = self.desired
        target = copy.deepcopy(current) if current else self.new_state()
        target.pop("_oid", None)
        target["all_tables"] = final_all
        target["tables"] = [] if final_all else copy.deepcopy(tables)
        target["schemas"] = [] if final_all else list(schemas)
        if d.publish is not None:
            target["publish"] = list(d.publish)
        if d.via_root is not None:
            target["publish_via_partition_root"] = d.via_root
        if d.gencols is not None and self.major >= GENERATED_COLUMNS_MAJOR:
            target["publish_generated_columns"] = d.gencols
        if d.owner is not None:
            target["owner"] = d.owner
        if d.comment_managed:
            target["comment"] = d.wanted_comment
        return target

    def plan(self, current, target, entries):
        """Statements (Composables) turning ``current`` into ``target``, and warnings."""
        name = ident(self.desired.name)
        statements = []
        warnings = []
        table_sqls = [entry for _label, entry in entries]
        if current is None or current["all_tables"] != target["all_tables"]:
            if current is not None:
                direction = "from FOR ALL TABLES to a table list" if current["all_tables"] else "to FOR ALL TABLES"
                warnings.append(
                    f"publication {self.display_name} is re-created (DROP and CREATE in one transaction) because "
                    f"PostgreSQL cannot change a publication {direction} with ALTER PUBLICATION; its subscribers "
                    "must run ALTER SUBSCRIPTION ... REFRESH PUBLICATION to pick up the new table list"
                )
                statements.append(sql.SQL("DROP PUBLICATION {}").format(name))
            objects = None if target["all_tables"] else objects_sql(table_sqls, target["schemas"])
            statements.append(create_sql(self.desired.name, target["all_tables"], objects, create_options(target)))
            if target["owner"] != self.session["current_user"]:
                statements.append(sql.SQL("ALTER PUBLICATION {} OWNER TO {}").format(name, ident(target["owner"])))
            if target["comment"] is not None:
                statements.append(
                    sql.SQL("COMMENT ON PUBLICATION {} IS {}").format(name, sql.Literal(target["comment"]))
                )
            return statements, warnings

        options = option_changes(current, self.desired, self.major)
        options_stmt = None
        if options:
            options_stmt = sql.SQL("ALTER PUBLICATION {} SET ({})").format(name, options_sql(options))
        # Enabling publish_via_partition_root must precede a row filter on a partitioned table, and
        # disabling it must follow the removal of such a filter.
        options_first = bool(options.get("publish_via_partition_root"))
        if options_stmt is not None and options_first:
            statements.append(options_stmt)
        if not target["all_tables"]:
            added, removed, changed = diff_tables(current["tables"], target["tables"])
            if added or removed or changed or list(current["schemas"]) != list(target["schemas"]):
                objects = objects_sql(table_sqls, target["schemas"])
                if objects is not None:
                    # One statement with the whole list, schemas included: SET drops what it does not name.
                    statements.append(sql.SQL("ALTER PUBLICATION {} SET {}").format(name, objects))
                else:
                    only = [sql.SQL("ONLY {}").format(ident(t["schema"], t["table"])) for t in current["tables"]]
                    drop = objects_sql(only, current["schemas"])
                    statements.append(sql.SQL("ALTER PUBLICATION {} DROP {}").format(name, drop))
        if options_stmt is not None and not options_first:
            statements.append(options_stmt)
        if target["owner"] != current["owner"]:
            statements.append(sql.SQL("ALTER PUBLICATION {} OWNER TO {}").format(name, ident(target["owner"])))
        if target["comment"] != current["comment"]:
            statements.append(sql.SQL("COMMENT ON PUBLICATION {} IS {}").format(name, sql.Literal(target["comment"])))
        return statements, warnings

    # -- warnings -------------------------------------------------------------------------------

    def replica_identity_warnings(self, state):
        """Warnings about published tables whose UPDATE/DELETE PostgreSQL refuses on the publisher."""
        if not state or not ({"update", "delete"} & set(state["publish"])):
            return []
        ops = "/".join(op.upper() for op in ("update", "delete") if op in state["publish"])
        pub = quote_ident(state["name"])
        warnings = []
        rows = self.run_query(
            no_replica_identity_query(),
            [
                [t["schema"] for t in state["tables"]],
                [t["table"] for t in state["tables"]],
                list(state["schemas"]),
                bool(state["all_tables"]),
            ],
        )
        if rows:
            names = [table_display(r["schema"], r["name"]) for r in rows]
            shown = ", ".join(names[:MAX_LISTED_TABLES])
            if len(names) > MAX_LISTED_TABLES:
                shown += f" and {len(names) - MAX_LISTED_TABLES} more"
            warnings.append(
                f"publication {pub} publishes {ops}, but these tables have neither a primary key nor a replica "
                f"identity, so PostgreSQL refuses {ops} on them: {shown} (add a primary key, set REPLICA IDENTITY, "
                "or leave update and delete out of publish)"
            )
        checked = [t for t in state["tables"] if t["_relkind"] == "r" and (t["_qual_tree"] or t["_attnums"])]
        if not checked:
            return warnings
        warnings.extend(column_list_problems(self.run_query, state, checked, ops))
        return warnings

    # -- run ------------------------------------------------------------------------------------

    def prepare(self):
        """Everything that can fail before a write; the plan :meth:`apply` carries out."""
        m, d = self.m, self.desired
        self.check_versions()
        if self.session is None:
            self.session = dict(m.query_one(SESSION_QUERY))
        current = read_publication(self.run_query, d.name, self.major)
        planned = {"current": current, "target": None, "statements": [], "warnings": []}
        if d.state == "absent":
            if current is not None:
                planned["statements"] = [sql.SQL("DROP PUBLICATION {}").format(ident(d.name))]
            return planned

        self.check_objects_exist()
        final_all = d.wanted_all_tables
        if final_all is None:
            final_all = current["all_tables"] if current else False
        entries, tables, schemas = ([], [], []) if final_all else self.final_list(current)
        planned["target"] = self.target_state(current, final_all, tables, schemas)
        planned["statements"], planned["warnings"] = self.plan(current, planned["target"], entries)
        return planned

    def apply(self, planned):
        """Run the statements of :meth:`prepare`; the result ``{name, changed, publication, diff: (before, after)}``."""
        m, d = self.m, self.desired
        current, statements = planned["current"], planned["statements"]
        before = public_state(current)
        for statement in statements:
            m.execute(statement)
        changed = bool(statements)
        result = {"name": d.name, "changed": changed}
        if d.state == "absent":
            return {**result, "publication": {}, "diff": (before, {})}
        if not changed:
            final = current
        elif m.check_mode:
            final = planned["target"]
        else:
            final = read_publication(self.run_query, d.name, self.major)
        warnings = planned["warnings"] + self.replica_identity_warnings(final)
        # Said once per module run, also when a list has several publications.
        if self.session["wal_level"] != "logical" and not self.session.get("wal_level_warned"):
            self.session["wal_level_warned"] = True
            warnings.append(
                f"wal_level is {self.session['wal_level']}: publications publish nothing until wal_level is "
                "logical (see inventium.logical_replication.server_settings; it needs a restart)"
            )
        for warning in warnings:
            m.warn(warning)
        after = public_state(final)
        return {**result, "publication": after, "diff": (before, after)}

    def run(self):
        """The single form: one publication, exit with ``changed``, ``queries``, ``diff`` and ``publication``."""
        result = self.apply(self.prepare())
        self.m.exit(changed=result["changed"], diff=result["diff"], publication=result["publication"])
