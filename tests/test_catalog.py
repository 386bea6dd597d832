"""The catalog: table names are a contract, every fact is described, declarations are checked."""

from __future__ import annotations

import pytest

from egregora.schema.catalog import CATALOG
from egregora.schema.model import Catalog, ForeignKey, Index, Table, col
from egregora.schema.rules import Ordered

ARCHITECTURE_TABLES = {
    "documents",
    "messages",
    "annotations",
    "runs",
    "tasks",
    "git_repos",
    "git_commits",
    "git_refs",
    "git_lookup_cache",
    "asset_cache",
    "schema_migrations",
    # The secret key of the database's pseudonyms, which the architecture asks for per database.
    "pseudonym_keys",
    # Media bytes, which the architecture asks to be reachable through a PostgreSQL database's URL.
    "media_parts",
    # What git log -- DIR matches, and git's --follow pairing, for the git time machine's lookups.
    "git_directory_changes",
    "git_follow_sources",
}


def test_table_names_are_the_architecture_contract() -> None:
    assert set(CATALOG.names) == ARCHITECTURE_TABLES


def test_every_table_and_column_is_described() -> None:
    for table in CATALOG:
        assert table.description.strip(), table.name
        for column in table.columns:
            assert column.description.strip(), f"{table.name}.{column.name}"


def test_timestamps_are_timestamptz() -> None:
    for table in CATALOG:
        for column in table.columns:
            if column.dtype.is_timestamp():
                assert column.dtype.timezone == "UTC", f"{table.name}.{column.name}"


def test_enumerations_are_checked() -> None:
    rules = {r.name for t in CATALOG for r in t.rules}
    for name in [
        "documents_doc_type_values",
        "documents_status_values",
        "documents_media_type_values",
        "messages_kind_values",
        "runs_status_values",
        "tasks_status_values",
        "git_commits_change_type_values",
        "git_refs_ref_type_values",
    ]:
        assert name in rules


def test_annotations_have_two_typed_parents_and_no_polymorphic_id() -> None:
    table = CATALOG["annotations"]
    assert {fk.references for fk in table.foreign_keys} == {"messages", "documents"}
    assert not any("parent" in c.name for c in table.columns)


def test_no_index_covers_a_low_cardinality_column_alone() -> None:
    for table in CATALOG:
        for index in table.indexes:
            columns = [table.column(c) for c in index.columns]
            low = [c for c in columns if c.one_of is not None or c.dtype.is_boolean()]
            assert len(low) < len(columns), f"{index.name} indexes only low-cardinality columns"


def _table(**overrides: object) -> Table:
    fields: dict[str, object] = {
        "name": "t",
        "description": "d",
        "columns": (col("id", "!string", "id"), col("a", "int64", "a")),
        "primary_key": ("id",),
    }
    fields.update(overrides)
    return Table(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"primary_key": ("nope",)}, "unknown column 'nope'"),
        ({"primary_key": ("a",)}, "primary key column 'a' must be NOT NULL"),
        ({"primary_key": ()}, "no primary key"),
        ({"checks": (Ordered("r", "d", "a", "<", "b"),)}, "unknown column 'b'"),
        ({"indexes": (Index("i", ("id",), "x"), Index("i", ("a",), "y"))}, "name repeats"),
        ({"columns": (col("id", "!string", "x"), col("id", "string", "y"))}, "column name repeats"),
    ],
)
def test_wrong_declarations_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _table(**overrides)


def test_a_foreign_key_to_a_later_table_is_refused() -> None:
    child = _table(
        name="child",
        foreign_keys=(ForeignKey("fk", "a", "parent", "id"),),
        columns=(col("id", "!string", "id"), col("a", "string", "a")),
    )
    parent = _table(name="parent")
    with pytest.raises(ValueError, match="must be declared before it"):
        Catalog((child, parent))
    assert Catalog((parent, child)).children("parent") == (child,)
