"""A live schema as an engine reports it: tables, columns, constraints, indexes.

Each backend (``egregora.backends``) reads its engine's catalog into these values; the diff
compares them with the catalog as the same engine stores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LiveColumn:
    name: str
    data_type: str
    nullable: bool
    default: str | None


@dataclass(frozen=True)
class LiveConstraint:
    """A PRIMARY KEY, UNIQUE, CHECK or FOREIGN KEY as the database reports it."""

    kind: str
    columns: tuple[str, ...]
    expression: str | None = None
    references: str | None = None
    ref_columns: tuple[str, ...] = ()
    name: str = ""
    deferrable: bool = False

    @property
    def identity(self) -> tuple[Any, ...]:
        """What makes two constraints the same (names are left out: DuckDB forgets them)."""
        same = (self.kind, self.columns, self.expression, self.references, self.ref_columns)
        return (*same, "DEFERRABLE") if self.deferrable else same

    def describe(self) -> str:
        if self.kind == "CHECK":
            return f"CHECK {self.expression}"
        if self.kind == "FOREIGN KEY":
            target = f"{self.references}({', '.join(self.ref_columns)})"
            return f"FOREIGN KEY ({', '.join(self.columns)}) REFERENCES {target}"
        return f"{self.kind} ({', '.join(self.columns)})"


@dataclass(frozen=True)
class LiveIndex:
    name: str
    expressions: str
    unique: bool


@dataclass(frozen=True)
class LiveTable:
    name: str
    columns: tuple[LiveColumn, ...]
    constraints: tuple[LiveConstraint, ...]
    indexes: tuple[LiveIndex, ...]


LiveSchema = dict[str, LiveTable]
