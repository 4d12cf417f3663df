"""Schema versions: bring an older database forward to ``schema.sql``, or adopt one
made by the original imagingDB.

``schema.sql`` alone makes a fresh database, at :data:`~imagingdb.db.SCHEMA_VERSION`.
An older one is brought forward by the numbered :data:`STEPS`, each idempotent
and recorded in ``schema_version`` in the same transaction as its work. A
database made by the original imagingDB has the four tables but no
``schema_version``: it is version 0, and step 1 adopts it.

After the steps, :func:`converge` adds what ``schema.sql`` declares and the
database still lacks -- indexes, unique indexes, NOT NULLs, the foreign keys'
delete rules -- wherever the data allows, without changing a row. What the
data does not allow (a dataset ID registered twice, a NULL where imagingdb
needs a value, a row pointing at nothing) is reported, never "fixed":
``imagingdb db status`` lists it, and ``imagingdb db upgrade`` adds the
missing piece once the rows are put right. imagingdb keeps working meanwhile.

PostgreSQL changes tables in place (ALTER TABLE). SQLite cannot add or drop a
NOT NULL or change a foreign key in place, so a table is rebuilt from its
``schema.sql`` definition (the procedure SQLite documents: create, copy, drop,
rename), with every row and id kept.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import sqlalchemy as sa

from ..errors import WorkError
from . import tables as schema

SCHEMA_LOCK = 804117  # advisory lock serialising schema changes on one PostgreSQL server
SAMPLE = 10  # offending rows shown per problem


# ------------------------------------------------------------- schema.sql, read


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    not_null: bool
    references: Optional[tuple[str, str]] = None  # (table, column)
    on_delete: str = "NO ACTION"


@dataclass(frozen=True)
class TableSpec:
    name: str
    statement: str
    columns: tuple[ColumnSpec, ...]


@dataclass(frozen=True)
class IndexSpec:
    name: str
    table: str
    columns: tuple[str, ...]
    unique: bool
    statement: str


_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*)\)\s*$", re.S)
_INDEX = re.compile(r"CREATE (UNIQUE )?INDEX IF NOT EXISTS (\w+)\s+ON (\w+) \(([^)]*)\)\s*$", re.S)
_REFERENCES = re.compile(r"REFERENCES (\w+) \((\w+)\)(?: ON DELETE (CASCADE|RESTRICT|SET NULL))?")


def schema_tables(dialect: str) -> dict[str, TableSpec]:
    """The tables of schema.sql with their NOT NULLs and foreign keys, in creation order."""
    tables = {}
    for statement in schema.schema_statements(dialect):
        match = _TABLE.match(statement)
        if not match:
            continue
        body = re.sub(r"--[^\n]*", "", match[2])
        columns = []
        for definition in (d.strip() for d in body.split(",")):
            name = definition.split()[0]
            reference = _REFERENCES.search(definition)
            columns.append(ColumnSpec(
                name=name,
                not_null="NOT NULL" in definition or "PRIMARY KEY" in definition,
                references=(reference[1], reference[2]) if reference else None,
                on_delete=(reference[3] or "NO ACTION") if reference else "NO ACTION",
            ))
        tables[match[1]] = TableSpec(match[1], statement, tuple(columns))
    return tables


def schema_indexes(dialect: str) -> list[IndexSpec]:
    indexes = []
    for statement in schema.schema_statements(dialect):
        match = _INDEX.match(statement)
        if match:
            indexes.append(IndexSpec(match[2], match[3],
                                     tuple(c.strip() for c in match[4].split(",")),
                                     bool(match[1]), statement))
    return indexes


# ------------------------------------------------------------- what is there


@dataclass(frozen=True)
class BlockedChange:
    """A piece of schema.sql the data does not allow yet, and the rows in the way."""

    what: str
    rows: str

    def __str__(self) -> str:
        return f"{self.what} waits for: {self.rows}"


@dataclass
class Plan:
    """What converging would do (``actions``) and cannot do yet (``problems``)."""

    actions: list[tuple[str, Callable[[sa.Connection], None]]] = field(default_factory=list)
    problems: list[BlockedChange] = field(default_factory=list)
    rebuilt: set[str] = field(default_factory=set)  # SQLite tables recreated (indexes too)

    def add(self, description: str, action: Callable[[sa.Connection], None]) -> None:
        self.actions.append((description, action))


def _ids(conn: sa.Connection, table: str, where: str, params: dict) -> tuple[int, list[int]]:
    count = conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE {where}"), params).scalar()
    ids = conn.execute(sa.text(f"SELECT id FROM {table} WHERE {where} ORDER BY id LIMIT {SAMPLE}"),
                       params).scalars().all()
    return count, list(ids)


def _rows(count: int, ids: list[int]) -> str:
    shown = ", ".join(map(str, ids)) + (f" and {count - len(ids)} more" if count > len(ids) else "")
    return f"{count} row{'s' if count != 1 else ''} (id {shown})"


def _null_problem(conn: sa.Connection, table: str, column: str) -> Optional[BlockedChange]:
    count, ids = _ids(conn, table, f"{column} IS NULL", {})
    if not count:
        return None
    return BlockedChange(f"NOT NULL on {table}.{column}",
                   f"{table}.{column} is NULL in {_rows(count, ids)}; fill it in")


def _orphan_problem(conn: sa.Connection, table: str, column: str,
                    target: tuple[str, str]) -> Optional[BlockedChange]:
    where = (f"{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {target[0]} AS target "
             f"WHERE target.{target[1]} = {table}.{column})")
    count, ids = _ids(conn, table, where, {})
    if not count:
        return None
    return BlockedChange(f"foreign key {table}.{column} -> {target[0]}.{target[1]}",
                   f"{table} has {_rows(count, ids)} pointing at no {target[0]} row")


def _duplicate_problem(conn: sa.Connection, index: IndexSpec) -> Optional[BlockedChange]:
    columns = ", ".join(index.columns)
    not_null = " AND ".join(f"{c} IS NOT NULL" for c in index.columns)
    groups = conn.execute(sa.text(
        f"SELECT {columns} FROM {index.table} WHERE {not_null} GROUP BY {columns} "
        f"HAVING COUNT(*) > 1 ORDER BY {columns}")).all()
    if not groups:
        return None
    described = []
    for values in groups[:SAMPLE]:
        params = {f"v{i}": v for i, v in enumerate(values)}
        where = " AND ".join(f"{c} = :v{i}" for i, c in enumerate(index.columns))
        count, ids = _ids(conn, index.table, where, params)
        shown = ", ".join(f"{c} {v}" for c, v in zip(index.columns, values))
        described.append(f"{shown} is in {_rows(count, ids)}")
    more = f"; and {len(groups) - SAMPLE} more" if len(groups) > SAMPLE else ""
    return BlockedChange(f"unique index {index.name} on {index.table} ({columns})",
                   f"{'; '.join(described)}{more}; keep one row of each")


# ------------------------------------------------------------------ converge


def plan_convergence(conn: sa.Connection) -> Plan:
    """Everything schema.sql declares that the database lacks: to add, or blocked by rows."""
    dialect = conn.dialect.name
    tables = schema_tables(dialect)
    plan = Plan()
    existing = set(sa.inspect(conn).get_table_names())
    for table in tables.values():
        if table.name not in existing:
            continue  # an upgrade step creates it (schema_version, before adoption)
        if dialect == "postgresql":
            _plan_postgres_table(conn, table, plan)
        else:
            _plan_sqlite_table(conn, table, plan)
    for index in schema_indexes(dialect):
        if index.table not in existing:
            continue
        present = {i["name"] for i in sa.inspect(conn).get_indexes(index.table)}
        if index.name in present and index.table not in plan.rebuilt:
            continue
        problem = _duplicate_problem(conn, index) if index.unique else None
        if problem:
            plan.problems.append(problem)
        else:
            plan.add(f"{'unique ' if index.unique else ''}index {index.name} on "
                     f"{index.table} ({', '.join(index.columns)})",
                     _executing(index.statement))
    return plan


def _executing(statement: str) -> Callable[[sa.Connection], None]:
    return lambda conn: conn.exec_driver_sql(statement)


def _plan_postgres_table(conn: sa.Connection, table: TableSpec, plan: Plan) -> None:
    inspector = sa.inspect(conn)
    nullable = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
    foreign_keys = {tuple(fk["constrained_columns"]): fk
                    for fk in inspector.get_foreign_keys(table.name)}
    for column in table.columns:
        if column.not_null and nullable.get(column.name):
            problem = _null_problem(conn, table.name, column.name)
            if problem:
                plan.problems.append(problem)
            else:
                plan.add(f"NOT NULL on {table.name}.{column.name}", _executing(
                    f"ALTER TABLE {table.name} ALTER COLUMN {column.name} SET NOT NULL"))
        if column.references:
            _plan_postgres_foreign_key(conn, table.name, column,
                                       foreign_keys.get((column.name,)), plan)


def _plan_postgres_foreign_key(conn: sa.Connection, table: str, column: ColumnSpec,
                               existing: Optional[dict], plan: Plan) -> None:
    """Replace a missing foreign key, or one with another delete rule (the original's)."""
    rule = ((existing or {}).get("options", {}).get("ondelete") or "NO ACTION").upper()
    if existing and rule == column.on_delete:
        return
    problem = _orphan_problem(conn, table, column.name, column.references)
    if problem:
        plan.problems.append(problem)
        return
    statements = [f"ALTER TABLE {table} DROP CONSTRAINT {existing['name']}"] if existing else []
    target_table, target_column = column.references
    statements.append(
        f"ALTER TABLE {table} ADD CONSTRAINT {table}_{column.name}_fkey FOREIGN KEY "
        f"({column.name}) REFERENCES {target_table} ({target_column}) ON DELETE {column.on_delete}")
    plan.add(f"foreign key {table}.{column.name} ON DELETE {column.on_delete}",
             lambda conn: [conn.exec_driver_sql(statement) for statement in statements])


def _plan_sqlite_table(conn: sa.Connection, table: TableSpec, plan: Plan) -> None:
    """SQLite changes a NOT NULL or a foreign key only by rebuilding the table, whole."""
    # PRAGMA table_info rows: (cid, name, type, notnull, default, pk);
    # PRAGMA foreign_key_list rows: (id, seq, table, from, to, on_update, on_delete, match)
    info = {row[1]: row for row in conn.exec_driver_sql(f"PRAGMA table_info({table.name})")}
    rules = {row[3]: (row[2], row[6].upper())
             for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({table.name})")}
    present = [c for c in table.columns if c.name in info and not info[c.name][5]]
    differs = [c for c in present if bool(info[c.name][3]) != c.not_null
               or (c.references and rules.get(c.name) != (c.references[0], c.on_delete))]
    if not differs:
        return
    problems = []
    for column in present:
        if column.not_null and not info[column.name][3]:
            problems.append(_null_problem(conn, table.name, column.name))
        if column.references:
            problems.append(_orphan_problem(conn, table.name, column.name, column.references))
    if any(problems):
        plan.problems.extend(p for p in problems if p)
        return
    names = ", ".join(c.name for c in differs)
    plan.add(f"NOT NULL and foreign keys of {table.name} ({names}), by rebuilding it",
             lambda c: rebuild_sqlite_table(c, table))
    plan.rebuilt.add(table.name)


def rebuild_sqlite_table(conn: sa.Connection, table: TableSpec) -> None:
    """Recreate ``table`` from schema.sql with every row and id; foreign keys must be off."""
    staging = f"{table.name}__imagingdb_rebuild"
    conn.exec_driver_sql(table.statement.replace(
        f"CREATE TABLE IF NOT EXISTS {table.name} (", f"CREATE TABLE {staging} (", 1))
    present = {row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({table.name})")}
    columns = ", ".join(c.name for c in table.columns if c.name in present)
    conn.exec_driver_sql(f"INSERT INTO {staging} ({columns}) SELECT {columns} FROM {table.name}")
    conn.exec_driver_sql(f"DROP TABLE {table.name}")
    conn.exec_driver_sql(f"ALTER TABLE {staging} RENAME TO {table.name}")


# --------------------------------------------------------------------- steps


def _create_schema_version(conn: sa.Connection) -> None:
    """Version 1 adopts a database made by the original imagingDB: it only lacked this table
    (and what converge() adds)."""
    statement = next(s for s in schema.schema_statements(conn.dialect.name)
                     if s.startswith("CREATE TABLE IF NOT EXISTS schema_version "))
    conn.exec_driver_sql(statement)


def _storage_dir_nullable(conn: sa.Connection) -> None:
    """Version 2: storage_dir may be NULL, as in the original's early datasets."""
    tables = schema_tables(conn.dialect.name)
    for name in ("file_global", "frames_global"):
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"ALTER TABLE {name} ALTER COLUMN storage_dir DROP NOT NULL")
        elif any(row[1] == "storage_dir" and row[3]
                 for row in conn.exec_driver_sql(f"PRAGMA table_info({name})")):
            rebuild_sqlite_table(conn, tables[name])


def _frame_format_column(conn: sa.Connection) -> None:
    """Version 3: frames_global records its frame layout (NULL: png, as every earlier row)."""
    columns = {column["name"] for column in sa.inspect(conn).get_columns("frames_global")}
    if "frame_format" not in columns:
        conn.exec_driver_sql("ALTER TABLE frames_global ADD COLUMN frame_format VARCHAR")


def _catalogue_columns(conn: sa.Connection) -> None:
    """Version 4: data_set's annotations, provenance, sizes and content checksum (NULL in every
    earlier row: unknown), and the pending_removal table of delete and rename."""
    tables = schema_tables(conn.dialect.name)
    definitions = {}
    for line in tables["data_set"].statement.splitlines():
        words = re.sub(r"--.*", "", line).strip().rstrip(",").split()
        if words and words[0] in schema.DATA_SET_V4_COLUMNS:
            definitions[words[0]] = " ".join(words)
    present = {column["name"] for column in sa.inspect(conn).get_columns("data_set")}
    for name in schema.DATA_SET_V4_COLUMNS:
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE data_set ADD COLUMN {definitions[name]}")
    conn.exec_driver_sql(tables["pending_removal"].statement)


def _replica_table(conn: sa.Connection) -> None:
    """Version 5: the replica table (where complete copies of each dataset are); every earlier
    dataset has none, which reads as: in the primary store."""
    conn.exec_driver_sql(schema_tables(conn.dialect.name)["replica"].statement)


def _qc_tables(conn: sa.Connection) -> None:
    """Version 6: quality control at ingest -- the frames' qc_* columns (NULL in every earlier
    frame: not measured), and the qc_summary and thumbnail tables (no row: no QC)."""
    tables = schema_tables(conn.dialect.name)
    present = {column["name"] for column in sa.inspect(conn).get_columns("frames")}
    for name in schema.FRAMES_QC_COLUMNS:
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE frames ADD COLUMN {name} DOUBLE PRECISION")
    conn.exec_driver_sql(tables["qc_summary"].statement)
    conn.exec_driver_sql(tables["thumbnail"].statement)


def _storage_dir_indexes(conn: sa.Connection) -> None:
    """Version 7: indexes on frames_global and file_global storage_dir, through which gc
    finds the rows of each folder it lists (without them, a scan per folder: gc grew with
    the square of the catalogue)."""
    for table in ("frames_global", "file_global"):
        conn.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {table}_storage_dir_idx ON {table} (storage_dir)")


#: (version, what it does, the step); a step runs on a database at the version before it
STEPS: tuple[tuple[int, str, Callable[[sa.Connection], None]], ...] = (
    (1, "adopt a database made by the original imagingDB", _create_schema_version),
    (2, "storage_dir may be NULL", _storage_dir_nullable),
    (3, "frames_global records its frame layout (frame_format)", _frame_format_column),
    (4, "annotations, provenance and sizes of datasets; pending removals", _catalogue_columns),
    (5, "where each dataset's complete copies are (replica)", _replica_table),
    (6, "quality control at ingest (frames' qc_* columns, qc_summary, thumbnail)", _qc_tables),
    (7, "indexes on storage_dir (gc's look-up of a folder's rows)", _storage_dir_indexes),
)


# ------------------------------------------------------------------- upgrade


@dataclass
class UpgradeReport:
    before: Optional[int]  # None: the database was empty
    after: int
    steps: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    problems: list[BlockedChange] = field(default_factory=list)


@contextlib.contextmanager
def schema_change(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction for a whole upgrade, alone on the server."""
    if engine.dialect.name == "sqlite":
        with _sqlite_schema_change(engine) as conn:
            yield conn
        return
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        yield conn


@contextlib.contextmanager
def _sqlite_schema_change(engine: sa.Engine) -> Iterator[sa.Connection]:
    """SQLite's foreign keys are off meanwhile (a table rebuild drops and renames tables);
    the commit checks that no row points at nothing that did not before."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction: before BEGIN
        try:
            with conn.execution_options(sqlite_begin="IMMEDIATE").begin():
                dangling = set(conn.exec_driver_sql("PRAGMA foreign_key_check"))
                yield conn
                if set(conn.exec_driver_sql("PRAGMA foreign_key_check")) - dangling:
                    raise WorkError("the upgrade would leave rows pointing at nothing; "
                                    "nothing was changed")
        finally:
            raw.execute("PRAGMA foreign_keys = ON")


def upgrade(engine: sa.Engine) -> UpgradeReport:
    """Create the schema, or bring the database forward to it as far as its rows allow."""
    with schema_change(engine) as conn:
        before = schema.detect_version(conn)
        if before is None:
            for statement in schema.schema_statements(engine.dialect.name):
                conn.exec_driver_sql(statement)
            return UpgradeReport(None, schema.current_version(conn))
        schema.refuse_newer(before)
        report = UpgradeReport(before, before)
        for version, description, step in STEPS:
            if version > before:
                step(conn)
                conn.execute(sa.insert(schema.schema_version).values(
                    version=version, applied_at=sa.func.current_timestamp()))
                report.steps.append(f"{version}: {description}")
                report.after = version
        plan = plan_convergence(conn)
        for description, action in plan.actions:
            action(conn)
            report.added.append(description)
        report.problems = plan.problems
        return report


# -------------------------------------------------------------------- status


@dataclass
class SchemaStatus:
    version: Optional[int]
    steps: list[str]      # steps `db upgrade` would run
    missing: list[str]    # pieces of schema.sql `db upgrade` would add
    problems: list[BlockedChange]
    datasets: int
    #: the version this imagingdb makes (``db upgrade`` brings ``version`` there)
    target: int = schema.SCHEMA_VERSION

    @property
    def state(self) -> str:
        if self.version is None:
            return "empty: imagingdb init (or db upgrade) creates the schema"
        if self.version == 0:
            return "made by the original imagingDB: imagingdb db upgrade adopts it"
        if self.steps or self.missing:
            return "behind: run imagingdb db upgrade"
        if self.problems:
            return "up to date, except where rows block a constraint (below)"
        return "up to date"


def status(engine: sa.Engine) -> SchemaStatus:
    """The schema version and what an upgrade would do; changes nothing."""
    with engine.connect() as conn:
        version = schema.detect_version(conn)
        if version is None:
            return SchemaStatus(None, [], [], [], 0)
        steps = [f"{v}: {d}" for v, d, _ in STEPS if v > version]
        plan = plan_convergence(conn)
        datasets = conn.execute(sa.select(sa.func.count()).select_from(schema.data_set)).scalar()
    return SchemaStatus(version, steps, [d for d, _ in plan.actions], plan.problems, datasets)
