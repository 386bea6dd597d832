"""The catalog for people: a Markdown reference with a Mermaid ER diagram, and a JSON form."""

from __future__ import annotations

from typing import Any

from egregora.schema.model import Catalog, Column, Table


def type_name(column: Column) -> str:
    """A short type name for people: ``timestamptz``, ``string[]``, ``json``."""
    dtype = column.dtype
    if dtype.is_timestamp():
        return "timestamptz" if dtype.timezone else "timestamp"
    if dtype.is_array():
        return f"{type_name(Column('', dtype.value_type, ''))}[]"
    return str(dtype.copy(nullable=True))


def _key_marks(table: Table, column: str) -> list[str]:
    marks = []
    if column in table.primary_key:
        marks.append("PK")
    if any(fk.column == column for fk in table.foreign_keys):
        marks.append("FK")
    if any(column in u.columns for u in table.uniques):
        marks.append("UK")
    return marks


def _mermaid_text(text: str) -> str:
    return text.replace('"', "'")


def mermaid(catalog: Catalog) -> str:
    """An ``erDiagram`` of every table, its columns and keys, and every foreign key."""
    lines = ["erDiagram"]
    for table in catalog:
        lines.append(f"    {table.name} {{")
        for column in table.columns:
            marks = ",".join(_key_marks(table, column.name))
            parts = [type_name(column).replace(" ", ""), column.name]
            if marks:
                parts.append(marks)
            parts.append(f'"{_mermaid_text(column.description)}"')
            lines.append("        " + " ".join(parts))
        lines.append("    }")
    for table in catalog:
        for fk in table.foreign_keys:
            optional = table.column(fk.column).nullable
            left = "|o" if optional else "||"
            lines.append(f'    {fk.references} {left}--o{{ {table.name} : "{fk.column}"')
    return "\n".join(lines) + "\n"


def catalog_json(catalog: Catalog) -> dict[str, Any]:
    """The catalog as plain data (for ``egregora db schema --format json``)."""
    return {"tables": [_table_json(t) for t in catalog]}


def _table_json(table: Table) -> dict[str, Any]:
    return {
        "name": table.name,
        "description": table.description,
        "columns": [
            {
                "name": c.name,
                "type": str(c.dtype.copy(nullable=True)),
                "nullable": c.nullable,
                "description": c.description,
            }
            for c in table.columns
        ],
        "primary_key": {"name": table.pkey_name, "columns": list(table.primary_key)},
        "unique": [{"name": u.name, "columns": list(u.columns)} for u in table.uniques],
        "checks": [
            {"name": r.name, "description": r.description, "sql": r.sql_text()} for r in table.rules
        ],
        "foreign_keys": [
            {
                "name": fk.name,
                "column": fk.column,
                "references": fk.references,
                "ref_column": fk.ref_column,
            }
            for fk in table.foreign_keys
        ],
        "indexes": [
            {
                "name": i.name,
                "columns": list(i.columns),
                "serves": i.serves,
                "dialects": list(i.dialects),
                "descending": list(i.descending),
                "where": i.where,
            }
            for i in table.indexes
        ],
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(catalog: Catalog) -> str:
    """The schema reference kept in ``docs/schema.md``."""
    out = [
        "# Schema reference",
        "",
        "Generated from the catalog in `src/egregora/schema/` by "
        "`egregora db schema --format markdown`; do not edit by hand (`make docs` rewrites it, "
        "and a test fails when it is stale).",
        "",
        "## Entity-relationship diagram",
        "",
        "```mermaid",
        mermaid(catalog).rstrip("\n"),
        "```",
        "",
        "## Tables",
        "",
    ]
    out += [f"- [`{t.name}`](#{t.name}): {t.description}" for t in catalog]
    for table in catalog:
        out += ["", f"### {table.name}", "", table.description, ""]
        out += ["| column | type | null | key | description |", "| --- | --- | --- | --- | --- |"]
        for c in table.columns:
            null = "yes" if c.nullable else "NOT NULL"
            keys = ", ".join(_key_marks(table, c.name))
            out.append(
                f"| `{c.name}` | {type_name(c)} | {null} | {keys} | {_cell(c.description)} |"
            )
        out += ["", f"- Primary key `{table.pkey_name}`: ({', '.join(table.primary_key)})"]
        for u in table.uniques:
            out.append(f"- Unique `{u.name}`: ({', '.join(u.columns)}), {u.description}")
        for fk in table.foreign_keys:
            out.append(
                f"- Foreign key `{fk.name}`: {fk.column} references "
                f"{fk.references}({fk.ref_column})"
            )
        for r in table.rules:
            out.append(f"- Check `{r.name}`: {r.description}: `{_cell(r.sql_text())}`")
        for i in table.indexes:
            keys = ", ".join(f"{c} DESC" if c in i.descending else c for c in i.columns)
            partial = f" WHERE `{_cell(i.where)}`" if i.where is not None else ""
            out.append(
                f"- Index `{i.name}` on ({keys}){partial}, {', '.join(i.dialects)}: "
                f"serves {i.serves}"
            )
    return "\n".join(out) + "\n"
