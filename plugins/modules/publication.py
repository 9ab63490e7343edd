#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: publication
short_description: Create, change and drop PostgreSQL logical replication publications
version_added: 0.1.0
description:
  - Creates, alters and drops a publication (C(CREATE/ALTER/DROP PUBLICATION)) in the database
    O(login_db) and converges every difference to the desired state in one transaction - tables
    added or removed, a table's row filter or column list, schemas, C(publish) operations,
    C(publish_via_partition_root), C(publish_generated_columns), owner and comment.
  - Options that are not given are not managed; for example without O(tables) the publication's
    tables are left alone, while O(tables=[]) removes all of them.
  - Row filters and column lists are compared the way PostgreSQL stores them. The desired definition
    is first created as a throwaway publication inside a transaction that is rolled back, and
    PostgreSQL's own deparsed row filter (C(pg_get_expr)) and column list (C(prattrs)) of it are
    compared with those of the real publication. So C(topic='x') and C((topic = 'x'::text)) are
    the same filter and a re-run reports no change. The same step validates the whole desired
    definition (unknown columns, volatile functions in a row filter, relations that cannot be
    published ...) before anything is changed, also in check mode.
  - Names are written as in SQL - unquoted names are folded to lower case, double-quoted names
    keep their case and may contain any character, for example V("LeadPub") or
    V("Sales Data"."Order Items").
  - Every option is validated before anything is changed. Features the server lacks fail with the
    option's name and the PostgreSQL version that introduced it.
author:
  - Inventium logical replication team (@inventium)
options:
  name:
    description:
      - Name of the publication, as an SQL identifier (quote it to keep upper-case letters, for example
        V("LeadPub")).
    type: str
    required: true
  state:
    description:
      - V(present) creates or changes the publication, V(absent) drops it.
    type: str
    choices: [present, absent]
    default: present
  all_tables:
    description:
      - V(true) publishes all tables of the database, including tables created later
        (C(FOR ALL TABLES); needs a superuser).
      - V(false) makes the publication one with an explicit list of O(tables) and O(schemas).
      - PostgreSQL cannot switch an existing publication between both kinds with C(ALTER PUBLICATION);
        the module then drops and re-creates the publication in the same transaction, keeps its owner,
        comment and options, and emits a warning. Subscribers must C(REFRESH PUBLICATION) afterwards.
      - When not set, the kind of an existing publication is kept, unless O(tables) or O(schemas) are
        given (they imply V(false)).
      - Cannot be V(true) together with a non-empty O(tables) or O(schemas).
    type: bool
  tables:
    description:
      - The tables the publication contains, besides those of O(schemas). Tables not listed are removed.
      - Each element is either a table name (V(books), V(public.books), V("Sales Data"."Order Items");
        without a schema V(public) is assumed) or a dictionary with the keys C(name) (required),
        C(columns) (a list of column names, the column list; PostgreSQL 15 or later) and C(where) (a
        row filter expression, without the keyword C(WHERE); PostgreSQL 15 or later).
      - Tables that do not exist make the module fail, naming all of them, before anything is changed.
      - Tables with child tables by inheritance include the children, as in SQL.
      - Changing a row filter or a column list is one atomic C(ALTER PUBLICATION ... SET TABLE ...)
        statement that also repeats the publication's schemas.
    type: list
    elements: raw
  schemas:
    description:
      - Schemas all of whose tables are published (C(TABLES IN SCHEMA); PostgreSQL 15 or later). Schemas
        not listed are removed.
      - PostgreSQL does not allow schemas together with tables that have a column list.
    type: list
    elements: str
  publish:
    description:
      - The operations to publish, any of V(insert), V(update), V(delete), V(truncate).
      - Order, case, duplicates and white space do not matter; a comma-separated string such as
        V(insert, update) is accepted too. An empty list publishes no operation.
      - When not set, an existing publication keeps its operations and a new one publishes all of them
        (PostgreSQL's default).
    type: list
    elements: str
  publish_via_partition_root:
    description:
      - Publish changes of partitions as changes of their partitioned root table (PostgreSQL 13 or later).
      - When not set, an existing publication keeps its value and a new one gets PostgreSQL's default
        (V(false)).
    type: bool
  publish_generated_columns:
    description:
      - Whether stored generated columns of the tables are published (PostgreSQL 18 or later).
      - When not set, an existing publication keeps its value and a new one gets PostgreSQL's default
        (V(none)).
    type: str
    choices: [none, stored]
  owner:
    description:
      - The role owning the publication (C(ALTER PUBLICATION ... OWNER TO)), as an SQL identifier.
      - When not set, a new publication is owned by O(login_user) and an existing one keeps its owner.
    type: str
  comment:
    description:
      - Comment on the publication (C(COMMENT ON PUBLICATION)). V('') removes the comment.
      - When not set, the comment is not managed.
    type: str
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - Supports PostgreSQL 13 and later. Row filters, column lists and O(schemas) need PostgreSQL 15,
    O(publish_generated_columns) PostgreSQL 18.
  - The login role needs C(CREATE) on the database and ownership of the listed tables (the throwaway
    publication that validates the desired definition is created with them); C(FOR ALL TABLES) and
    C(TABLES IN SCHEMA) need a superuser.
  - All changes of one run are made in one transaction; when PostgreSQL rejects one of them nothing is
    changed.
  - The module warns when a published table has no primary key or replica identity while O(publish)
    includes C(update) or C(delete), and when a row filter or column list does not cover the replica
    identity - PostgreSQL then refuses C(UPDATE) and C(DELETE) on that table on the publisher.
  - The module warns when C(wal_level) is not C(logical); see
    M(inventium.logical_replication.server_settings).
seealso:
  - name: CREATE PUBLICATION
    description: PostgreSQL documentation of CREATE PUBLICATION.
    link: https://www.postgresql.org/docs/current/sql-createpublication.html
  - name: ALTER PUBLICATION
    description: PostgreSQL documentation of ALTER PUBLICATION.
    link: https://www.postgresql.org/docs/current/sql-alterpublication.html
  - module: inventium.logical_replication.replication_slot
"""

EXAMPLES = r"""
- name: Publish the leadership books only (row filter)
  inventium.logical_replication.publication:
    login_host: 127.0.0.1
    login_password: "{{ postgres_password }}"
    login_db: publisher
    name: leadership_pub
    tables:
      - name: public.books
        where: topic = 'leadership'
    comment: Leadership books for subscriber1

- name: Quoted names, a column list and only some operations
  inventium.logical_replication.publication:
    login_db: sales
    name: '"LeadPub"'
    tables:
      - public.customers
      - name: '"Sales Data"."Order Items"'
        columns: [id, qty, '"Unit Price"']
    publish: insert, update, truncate
    publish_via_partition_root: true
    owner: replication_admin

- name: Everything in two schemas plus one table (PostgreSQL 15+)
  inventium.logical_replication.publication:
    login_db: app
    name: app_pub
    schemas: [sales, inventory]
    tables: [public.settings]

- name: Publish all tables (re-creates a publication that had a table list, with a warning)
  inventium.logical_replication.publication:
    login_db: app
    name: everything
    all_tables: true

- name: Drop a publication
  inventium.logical_replication.publication:
    login_db: app
    name: old_pub
    state: absent
"""

RETURN = r"""
queries:
  description:
    - The statements that changed the publication (in check mode, the statements that would have
      been executed). Validation and reads are not listed.
  returned: always
  type: list
  elements: str
  sample:
    - CREATE PUBLICATION "leadership_pub" FOR TABLE "public"."books" WHERE (topic = 'leadership')
    - COMMENT ON PUBLICATION "leadership_pub" IS 'Leadership books for subscriber1'
publication:
  description:
    - The publication after the run (in check mode, the predicted state), as PostgreSQL stores it.
    - Empty when the publication does not exist.
  returned: always
  type: dict
  contains:
    name:
      description: Name of the publication (exact, not quoted).
      type: str
      sample: LeadPub
    owner:
      description: The owning role.
      type: str
      sample: postgres
    all_tables:
      description: Whether the publication is C(FOR ALL TABLES).
      type: bool
      sample: false
    tables:
      description: The tables listed in the publication (not those published via O(schemas) or O(all_tables)), sorted.
      type: list
      elements: dict
      contains:
        name:
          description: Qualified name, quoted where needed (it can be passed back in O(tables)).
          type: str
          sample: '"Sales Data"."Order Items"'
        schema:
          description: Schema name (exact).
          type: str
          sample: Sales Data
        table:
          description: Table name (exact).
          type: str
          sample: Order Items
        columns:
          description: The column list in table order, V(null) when all columns are published.
          type: list
          elements: str
          sample: [id, qty]
        where:
          description: The row filter as PostgreSQL deparses it, V(null) when there is none.
          type: str
          sample: (topic = 'leadership'::text)
    schemas:
      description: The schemas published with C(TABLES IN SCHEMA), sorted.
      type: list
      elements: str
      sample: [sales]
    publish:
      description: The published operations, in the order insert, update, delete, truncate.
      type: list
      elements: str
      sample: [insert, update, delete, truncate]
    publish_via_partition_root:
      description: Value of C(publish_via_partition_root).
      type: bool
      sample: false
    publish_generated_columns:
      description: Value of C(publish_generated_columns), V(none) or V(stored).
      type: str
      returned: on PostgreSQL 18 and later
      sample: none
    comment:
      description: The comment, V(null) when there is none.
      type: str
      sample: Leadership books
diff:
  description: Before and after state of the publication (see RV(publication)), with C(--diff).
  returned: when diff mode is enabled
  type: dict
  contains:
    before:
      description: State before the run (empty when the publication did not exist).
      type: dict
    after:
      description: State after the run, predicted in check mode (empty when dropped).
      type: dict
"""

import copy  # noqa: E402 - Ansible modules import after their documentation
import re  # noqa: E402
import secrets  # noqa: E402

from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import psycopg, sql  # noqa: E402
from ansible_collections.inventium.logical_replication.plugins.module_utils.health import (  # noqa: E402
    no_replica_identity_query,
    publication_query,
    publication_rels_query,
    publication_schemas_query,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (  # noqa: E402
    IdentifierError,
    QualifiedName,
    ident,
    parse_identifier,
    parse_qualified_name,
    quote_ident,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import (  # noqa: E402
    PgModule,
    format_db_error,
)

MIN_SERVER_MAJOR = 13
ROW_FILTER_MAJOR = 15
COLUMN_LIST_MAJOR = 15
SCHEMAS_MAJOR = 15
GENERATED_COLUMNS_MAJOR = 18

PUBLISH_OPERATIONS = ("insert", "update", "delete", "truncate")
GENERATED_COLUMNS_VALUES = ("none", "stored")
_GENCOLS_FROM_CATALOG = {"n": "none", "s": "stored"}
TABLE_KEYS = ("name", "columns", "where")
MAX_LISTED_TABLES = 20


class OptionError(ValueError):
    """Invalid module input; ``str()`` names the offending option and value."""


# ----------------------------------------------------------------------------------------------
# Pure helpers: input parsing, version gating, diffing, SQL composition
# ----------------------------------------------------------------------------------------------


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


def publish_from_flags(row):
    """Operations of a ``pg_publication`` row (``pubinsert`` ...) in canonical order."""
    return tuple(op for op in PUBLISH_OPERATIONS if row["pub" + op])


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
    columns = []
    for index, column in enumerate(raw):
        name = _parse_name(column, f"{option}[{index}]")
        if name in columns:
            raise OptionError(f"{option}: column {quote_ident(name)} is listed more than once")
        columns.append(name)
    return columns


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
    names = []
    for index, value in enumerate(values):
        name = _parse_name(value, f"schemas[{index}]")
        if name in names:
            raise OptionError(f"schemas[{index}]: schema {quote_ident(name)} is listed more than once")
        names.append(name)
    return tuple(sorted(names))


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


def table_display(schema, table):
    """``schema.table`` quoted where needed (parses back to the same table)."""
    return str(QualifiedName(schema, table))


def table_state(schema, table, columns, where):
    return {
        "name": table_display(schema, table),
        "schema": schema,
        "table": table,
        "columns": list(columns) if columns is not None else None,
        "where": where,
    }


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


def referenced_attnums(node_tree):
    """Attribute numbers of the table columns a stored row filter (``prqual::text``) references."""
    if not node_tree:
        return set()
    return {int(n) for n in re.findall(r"\{VAR :varno 1 :varattno (\d+)\b", node_tree)}


def public_state(state):
    """A copy of a state dict without the module's internal (``_``-prefixed) keys; ``{}`` for ``None``."""
    if not state:
        return {}
    result = {k: copy.deepcopy(v) for k, v in state.items() if not k.startswith("_")}
    result["tables"] = [{k: copy.deepcopy(v) for k, v in t.items() if not k.startswith("_")} for t in state["tables"]]
    return result


# ----------------------------------------------------------------------------------------------
# Catalog access. ``run(statement, params)`` returns rows as dicts.
# ----------------------------------------------------------------------------------------------


def _rels_query(major):
    return publication_rels_query(major)


def _publication_query(major):
    return publication_query(major)


def read_tables(run, pub_oid, major):
    """Table state dicts (with internal keys) of a publication, sorted by schema and table."""
    tables = []
    for row in run(_rels_query(major), [pub_oid]):
        table = table_state(row["schema"], row["table"], row["columns"], row["where"])
        table["_relid"] = row["relid"]
        table["_relkind"] = row["relkind"]
        table["_qual_tree"] = row["qual_tree"]
        table["_attnums"] = list(row["attnums"]) if row["attnums"] is not None else None
        tables.append(table)
    tables.sort(key=lambda t: (t["schema"], t["table"]))
    return tables


def read_schemas(run, pub_oid, major):
    if major < SCHEMAS_MAJOR:
        return []
    return sorted(row["name"] for row in run(publication_schemas_query(), [pub_oid]))


def read_publication(run, name, major):
    """The publication's state dict (with internal keys), or ``None`` when it does not exist."""
    rows = run(_publication_query(major), [name])
    if not rows:
        return None
    row = rows[0]
    state = {
        "name": row["pubname"],
        "owner": row["owner"],
        "all_tables": row["puballtables"],
        "tables": read_tables(run, row["oid"], major),
        "schemas": read_schemas(run, row["oid"], major),
        "publish": list(publish_from_flags(row)),
        "publish_via_partition_root": row["pubviaroot"],
        "comment": row["comment"],
        "_oid": row["oid"],
    }
    if major >= GENERATED_COLUMNS_MAJOR:
        state["publish_generated_columns"] = _GENCOLS_FROM_CATALOG.get(row["pubgencols"], row["pubgencols"])
    return state


MISSING_TABLES_QUERY = (
    "SELECT u.schema, u.name FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS u(schema, name, i)"
    " WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = u.schema AND c.relname = u.name) ORDER BY u.i"
)
MISSING_SCHEMAS_QUERY = (
    "SELECT u.name FROM unnest(%s::text[]) WITH ORDINALITY AS u(name, i)"
    " WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = u.name) ORDER BY u.i"
)
# Replica identity columns (attnums) of tables; NULL when there is none.
REPLICA_IDENTITY_COLUMNS_QUERY = (
    "SELECT c.oid AS relid,"
    " CASE c.relreplident"
    "  WHEN 'f' THEN ARRAY(SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid"
    "   AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '')"
    "  WHEN 'd' THEN (SELECT i.indkey::int2[] FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)"
    "  WHEN 'i' THEN (SELECT i.indkey::int2[] FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)"
    " END AS ri_attnums,"
    " ARRAY(SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
    "  ORDER BY a.attnum) AS attnums,"
    " ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
    "  ORDER BY a.attnum) AS attnames"
    " FROM pg_catalog.pg_class c WHERE c.oid = ANY (%s::oid[])"
)


# ----------------------------------------------------------------------------------------------
# The module
# ----------------------------------------------------------------------------------------------


class PublicationModule:
    """parse args -> read state -> (server-side normalisation) -> diff -> apply -> report."""

    def __init__(self, m, desired):
        self.m = m
        self.desired = desired
        self.major = m.server_major
        self.session = None

    def run_query(self, statement, params=None):
        return self.m.query(statement, params)

    @property
    def display_name(self):
        return quote_ident(self.desired.name)

    # -- validation against the server ----------------------------------------------------------

    def check_versions(self):
        if self.major < MIN_SERVER_MAJOR:
            self.m.fail(
                f"the publication module supports PostgreSQL {MIN_SERVER_MAJOR} and later (server is {self.major})"
            )
        for option, minimum, reason in version_problems(self.desired, self.major):
            self.m.require_version(option, minimum, reason)

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
        info = {r["relid"]: r for r in self.run_query(REPLICA_IDENTITY_COLUMNS_QUERY, [[t["_relid"] for t in checked]])}
        for table in checked:
            row = info.get(table["_relid"])
            ri = {int(a) for a in (row["ri_attnums"] or ())} if row else set()
            if not ri:
                continue  # no replica identity at all: warned about above
            names = dict(zip((int(a) for a in row["attnums"]), row["attnames"]))  # noqa: B905 - Python 3.8 targets
            outside = sorted(referenced_attnums(table["_qual_tree"]) - ri)
            if outside:
                columns = ", ".join(quote_ident(names.get(a, str(a))) for a in outside)
                warnings.append(
                    f"publication {pub} publishes {ops}, but the row filter of {table['name']} uses column(s) "
                    f"{columns} outside the replica identity, so PostgreSQL refuses {ops} on that table (filter "
                    "on replica identity columns only, or set REPLICA IDENTITY FULL)"
                )
            if table["_attnums"]:
                missing = sorted(ri - {int(a) for a in table["_attnums"]})
                if missing:
                    columns = ", ".join(quote_ident(names.get(a, str(a))) for a in missing)
                    warnings.append(
                        f"publication {pub} publishes {ops}, but the column list of {table['name']} lacks the "
                        f"replica identity column(s) {columns}, so PostgreSQL refuses {ops} on that table"
                    )
        return warnings

    # -- run ------------------------------------------------------------------------------------

    def run(self):
        m, d = self.m, self.desired
        self.check_versions()
        self.session = m.query_one(
            "SELECT current_user::text AS current_user, current_database()::text AS database,"
            " current_setting('wal_level') AS wal_level"
        )
        current = read_publication(self.run_query, d.name, self.major)
        before = public_state(current)

        if d.state == "absent":
            if current is not None:
                m.execute(sql.SQL("DROP PUBLICATION {}").format(ident(d.name)))
            m.exit(changed=current is not None, diff=(before, {}), publication={})

        self.check_objects_exist()
        final_all = d.wanted_all_tables
        if final_all is None:
            final_all = current["all_tables"] if current else False
        entries, tables, schemas = ([], [], []) if final_all else self.final_list(current)
        target = self.target_state(current, final_all, tables, schemas)
        statements, warnings = self.plan(current, target, entries)
        for statement in statements:
            m.execute(statement)
        changed = bool(statements)
        if not changed:
            final = current
        elif m.check_mode:
            final = target
        else:
            final = read_publication(self.run_query, d.name, self.major)
        warnings.extend(self.replica_identity_warnings(final))
        if self.session["wal_level"] != "logical":
            warnings.append(
                f"wal_level is {self.session['wal_level']}: publications publish nothing until wal_level is "
                "logical (see inventium.logical_replication.server_settings; it needs a restart)"
            )
        for warning in warnings:
            m.warn(warning)
        after = public_state(final)
        m.exit(changed=changed, diff=(before, after), publication=after)


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        all_tables=dict(type="bool"),
        tables=dict(type="list", elements="raw"),
        schemas=dict(type="list", elements="str"),
        publish=dict(type="list", elements="str"),
        publish_via_partition_root=dict(type="bool"),
        publish_generated_columns=dict(type="str", choices=list(GENERATED_COLUMNS_VALUES)),
        owner=dict(type="str"),
        comment=dict(type="str"),
    )


def main():
    m = PgModule(argument_spec=argument_spec())
    try:
        desired = Desired(m.params)
    except OptionError as exc:
        m.fail(str(exc))
    m.connect()
    PublicationModule(m, desired).run()


if __name__ == "__main__":
    main()
