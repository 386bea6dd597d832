"""DDL rendering: quoting, dialects, and fidelity of the created tables to the declarations."""

from __future__ import annotations

import duckdb
import ibis
import pytest
import sqlglot
from sqlglot import exp

from egregora.backends.duckdb import introspect_duckdb
from egregora.ddl.render import (
    DIALECTS,
    Dialect,
    catalog_statements,
    create_table,
    table_statements,
)
from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog, ForeignKey, Index, Table, Unique, col
from egregora.schema.rules import OneOf, RequiredWhen
from tests.support import insert_sql

HOSTILE_TABLE = 'we"ird; DROP TABLE x; --'
HOSTILE_COLUMN = 'col "a"; b'
HOSTILE_VALUE = "it's; DROP TABLE x; --"


def hostile_catalog() -> Catalog:
    parent = Table(
        name='pa"rent t',
        description="parent",
        columns=(col("i d", "!string", "id"),),
        primary_key=("i d",),
    )
    child = Table(
        name=HOSTILE_TABLE,
        description="a table whose names try to break out of quoting",
        columns=(
            col("id;", "!string", "id"),
            col(HOSTILE_COLUMN, "string", "kind", one_of=(HOSTILE_VALUE, "plain")),
            col("ref 'x'", "string", "reference"),
        ),
        primary_key=("id;",),
        uniques=(Unique('u"q; x', (HOSTILE_COLUMN, "ref 'x'")),),
        checks=(
            RequiredWhen('chk"; --', "needs ref", HOSTILE_COLUMN, HOSTILE_VALUE, ("ref 'x'",)),
        ),
        foreign_keys=(ForeignKey('f"k', "ref 'x'", 'pa"rent t', "i d"),),
        indexes=(Index('ix "1"; --', ("ref 'x'",), "lookups by ref"),),
    )
    return Catalog((parent, child))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_hostile_names_and_values_stay_inside_quotes(dialect: Dialect) -> None:
    statements = catalog_statements(hostile_catalog(), dialect)
    for statement in statements:
        parsed = sqlglot.parse(statement, read=dialect)
        assert len(parsed) == 1, f"one statement must stay one statement: {statement}"
    create = sqlglot.parse_one(statements[1], read=dialect)
    names = {i.name for i in create.find_all(exp.Identifier)}
    assert {HOSTILE_TABLE, HOSTILE_COLUMN, "id;", "ref 'x'", 'pa"rent t', "i d"} <= names
    assert all(i.quoted for i in create.find_all(exp.Identifier))
    literals = {lit.this for lit in create.find_all(exp.Literal) if lit.is_string}
    assert HOSTILE_VALUE in literals


def test_hostile_catalog_executes_and_keeps_exact_names_in_duckdb() -> None:
    catalog = hostile_catalog()
    with duckdb.connect() as con:
        for statement in catalog_statements(catalog, "duckdb"):
            con.execute(statement)
        live = introspect_duckdb(con)
        assert set(live) == {HOSTILE_TABLE, 'pa"rent t'}
        assert [c.name for c in live[HOSTILE_TABLE].columns] == ["id;", HOSTILE_COLUMN, "ref 'x'"]
        assert [i.name for i in live[HOSTILE_TABLE].indexes] == ['ix "1"; --']
        con.execute(insert_sql('pa"rent t', ["i d"]), ["p1"])
        con.execute(
            insert_sql(HOSTILE_TABLE, ["id;", HOSTILE_COLUMN, "ref 'x'"]),
            ["a", HOSTILE_VALUE, "p1"],
        )
        with pytest.raises(duckdb.ConstraintException):  # the CHECK built from the hostile value
            con.execute(insert_sql(HOSTILE_TABLE, ["id;", HOSTILE_COLUMN]), ["b", HOSTILE_VALUE])
        tables = {
            row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        assert tables == {HOSTILE_TABLE, 'pa"rent t'}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_catalog_statement_parses_back_to_the_same_tree(dialect: Dialect) -> None:
    for table in CATALOG:
        for statement in table_statements(table, dialect):
            tree = sqlglot.parse_one(statement, read=dialect)
            assert tree.sql(dialect=dialect) == statement


def test_postgres_ddl_declares_every_constraint_by_name() -> None:
    for table in CATALOG:
        tree = sqlglot.parse_one(create_table(table, "postgres").sql("postgres"), read="postgres")
        declared = {c.this.name for c in tree.find_all(exp.Constraint)}
        expected = {table.pkey_name, *(u.name for u in table.uniques)}
        expected |= {r.name for r in table.rules} | {fk.name for fk in table.foreign_keys}
        assert declared == expected


def test_tables_read_back_with_the_declared_ibis_schema() -> None:
    con = ibis.duckdb.connect()
    for statement in catalog_statements(CATALOG, "duckdb"):
        con.raw_sql(statement)
    for table in CATALOG:
        assert con.table(table.name).schema() == table.schema, table.name
    con.disconnect()


def test_one_of_values_are_rendered_as_literals() -> None:
    rule = OneOf("r", "d", "c", ("a'b", "c"))
    tree = rule.sql()
    assert [lit.this for lit in tree.find_all(exp.Literal)] == ["a'b", "c"]
    assert rule.sql_text("postgres") == "\"c\" IN ('a''b', 'c')"
