"""A contract report a person can read: each broken rule, how many rows broke it, example keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RuleFailure:
    """One broken rule. ``count`` is None for failures of shape (a column's type or presence)."""

    rule: str
    description: str
    count: int | None
    examples: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "description": self.description,
            "count": self.count,
            "examples": [dict(e) for e in self.examples],
        }

    def __str__(self) -> str:
        rows = "" if self.count is None else f" ({self.count} row{'s' * (self.count != 1)})"
        line = f"{self.rule}{rows}: {self.description}"
        if self.examples:
            shown = "; ".join(
                ", ".join(f"{k}={v!r}" for k, v in example.items()) for example in self.examples
            )
            line += f" e.g. {shown}"
        return line


@dataclass(frozen=True)
class ContractReport:
    """The outcome of checking data against one table's contract."""

    table: str
    rows: int | None
    failures: tuple[RuleFailure, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.failures

    def failure(self, rule: str) -> RuleFailure | None:
        return next((f for f in self.failures if f.rule == rule), None)

    @property
    def broken_rules(self) -> tuple[str, ...]:
        return tuple(f.rule for f in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "ok": self.ok,
            "rows": self.rows,
            "failures": [f.to_dict() for f in self.failures],
        }

    def __str__(self) -> str:
        if self.ok:
            return f"{self.table}: all {self.rows} rows satisfy the contract"
        head = (
            f"{self.table}: {len(self.failures)} rule(s) broken; "
            "fix the rows below (nothing was written)"
        )
        return "\n".join([head, *(f"  - {f}" for f in self.failures)])


def not_null_rule(table: str, column: str) -> str:
    """The name of the rule that ``table.column`` holds a value (a NOT NULL column)."""
    return f"{table}_{column}_not_null"
