"""Pandera contracts (Ibis backend) derived from the catalog's declarations.

Pandera decides which rules hold; validation runs inside the database, one query per check.
Pandera's failure cases are not readable (see platform notes), so for each broken rule the
report re-queries the same Ibis predicate to count the rows and show their keys. The storage
gateway's write reaches the same verdict in one statement (``storage.checks``) and has its
report lines written here, by :meth:`Contract.failure`, so both read alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import ibis
import ibis.expr.types as ir

from egregora.errors import ContractViolation
from egregora.schema.catalog import CATALOG
from egregora.schema.model import ForeignKey, Table, Unique

# Importing pandera sets PYARROW_IGNORE_TIMEZONE=1 for the whole process, after which pyarrow
# converts zone-aware datetimes by their wall-clock time (moving the instant). Put it back.
_SAVED = os.environ.get("PYARROW_IGNORE_TIMEZONE")

import pandera.ibis as pa  # noqa: E402
from pandera.errors import SchemaError, SchemaErrors  # noqa: E402

import egregora.contracts.dtypes  # noqa: E402, F401  (registers JSON and array dtypes with pandera)
from egregora.contracts.report import ContractReport, RuleFailure, not_null_rule  # noqa: E402

if _SAVED is None:
    os.environ.pop("PYARROW_IGNORE_TIMEZONE", None)
else:
    os.environ["PYARROW_IGNORE_TIMEZONE"] = _SAVED

Predicate = Callable[[ir.Table], ir.BooleanValue]


@dataclass(frozen=True)
class _Check:
    """A named row predicate; a row fails when it is FALSE (NULL passes, as in a SQL CHECK)."""

    name: str
    description: str
    predicate: Predicate
    columns: tuple[str, ...]
    duplicates: tuple[str, ...] = ()


def _joined_key(t: ir.Table, names: list[str]) -> ir.StringValue:
    """A composite key as one text value, each part prefixed with its length so no two keys
    share a text (a row of structs cannot be compared with IN on every engine)."""
    parts: list[ir.StringValue] = []
    for name in names:
        text = t[name].cast("string")
        parts += [text.length().cast("string"), ibis.literal(":"), text]
    return ibis.literal("").concat(*parts)


def _unique_predicate(unique: Unique) -> Predicate:
    """Rows whose key no other row shares. A semi-join, because pandera aggregates check
    results and DuckDB refuses window functions inside aggregates."""

    def predicate(t: ir.Table) -> ir.BooleanValue:
        names = list(unique.columns)
        complete = t.filter(*[t[c].notnull() for c in names])
        repeated = complete.group_by(names).agg(_n=complete.count()).filter(lambda g: g._n > 1)
        if len(names) == 1:
            alone: ir.BooleanValue = ~t[names[0]].isin(repeated[names[0]])
        else:
            alone = ~_joined_key(t, names).isin(_joined_key(repeated, names))
        for name in names:
            alone = alone | t[name].isnull()
        return alone

    return predicate


def _fk_predicate(fk: ForeignKey, parent: ir.Table) -> Predicate:
    def predicate(t: ir.Table) -> ir.BooleanValue:
        result: ir.BooleanValue = t[fk.column].isnull() | t[fk.column].isin(parent[fk.ref_column])
        return result

    return predicate


class Contract:
    """The contract of one catalog table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def checks(self, parents: Mapping[str, ir.Table] | None = None) -> list[_Check]:
        """Rules, keys and (when parent tables are given) foreign keys, as named checks."""
        out = [_Check(r.name, r.description, r.predicate, r.columns) for r in self.table.rules]
        for key in self.table.keys:
            description = f"{key.description or 'unique'}: ({', '.join(key.columns)}) is unique"
            out.append(
                _Check(key.name, description, _unique_predicate(key), key.columns, key.columns)
            )
        for fk in self.table.foreign_keys:
            if parents is not None and fk.references in parents:
                out.append(
                    _Check(
                        fk.name,
                        f"{fk.column} refers to an existing {fk.references}.{fk.ref_column}",
                        _fk_predicate(fk, parents[fk.references]),
                        (fk.column,),
                    )
                )
        return out

    def rule_names(self, *, references: bool = True) -> list[str]:
        """Every rule a report can name, in the order a report lists them: the NOT NULL
        columns (in column order), then the checks, the foreign keys last (with
        ``references``, as when every parent is given)."""
        nulls = [self.not_null_rule(c.name) for c in self.table.columns if not c.nullable]
        fks = [fk.name for fk in self.table.foreign_keys] if references else []
        return [*nulls, *(c.name for c in self.checks()), *fks]

    def not_null_rule(self, column: str) -> str:
        return not_null_rule(self.table.name, column)

    def pandera_schema(self, parents: Mapping[str, ir.Table] | None = None) -> pa.DataFrameSchema:
        columns = {
            c.name: pa.Column(c.dtype.copy(nullable=True), nullable=c.nullable, name=c.name)
            for c in self.table.columns
        }
        checks = [
            pa.Check(_as_pandera(check.predicate), name=check.name, error=check.description)
            for check in self.checks(parents)
        ]
        return pa.DataFrameSchema(columns=columns, checks=checks, strict=True, name=self.table.name)

    def validate(
        self,
        data: ir.Table,
        *,
        parents: Mapping[str, ir.Table] | None = None,
        max_examples: int = 5,
    ) -> ContractReport:
        """Check ``data`` and return a readable report (``report.ok`` when nothing broke)."""
        schema = self.pandera_schema(parents)
        try:
            schema.validate(data, lazy=True)
        except SchemaErrors as errors:
            failures = self._failures(data, errors.schema_errors, parents, max_examples)
        else:
            failures = []
        rows = int(data.count().execute())
        return ContractReport(self.table.name, rows, tuple(failures))

    def enforce(
        self,
        data: ir.Table,
        *,
        parents: Mapping[str, ir.Table] | None = None,
        max_examples: int = 5,
    ) -> ContractReport:
        """Like :meth:`validate`, but raise :class:`ContractViolation` when a rule breaks."""
        report = self.validate(data, parents=parents, max_examples=max_examples)
        if not report.ok:
            raise ContractViolation(report)
        return report

    # -- building the report --------------------------------------------------------------------
    def _failures(
        self,
        data: ir.Table,
        errors: list[SchemaError],
        parents: Mapping[str, ir.Table] | None,
        max_examples: int,
    ) -> list[RuleFailure]:
        by_name = {c.name: c for c in self.checks(parents)}
        failures: dict[str, RuleFailure] = {}
        for error in errors:
            reason = getattr(error.reason_code, "value", str(error.reason_code))
            check = getattr(error, "check", None)
            check_name = getattr(check, "name", None)
            column = getattr(getattr(error, "schema", None), "name", None)
            if reason == "dataframe_check" and check_name in by_name:
                failure = self._rule_failure(data, by_name[check_name], max_examples)
            elif reason == "series_contains_nulls" and column in self.table.column_names:
                failure = self._null_failure(data, column, max_examples)
            else:
                failure = self._shape_failure(error, reason, column, check_name)
            failures.setdefault(failure.rule, failure)
        # pandera aggregates each check with all(), which is NULL over zero rows and read as a
        # failure: a row rule that no row breaks is not broken.
        return [f for f in failures.values() if f.count != 0]

    def _shape_failure(
        self, error: SchemaError, reason: str, column: str | None, check_name: str | None
    ) -> RuleFailure:
        """Failures about the data's shape rather than its rows: no count, a plain sentence."""
        name = self.table.name
        quoted = _first_line(error).split("'")
        if reason == "column_not_in_schema":
            extra = quoted[1] if len(quoted) > 2 else column
            return RuleFailure(
                f"unknown_column({extra})",
                f"{name} has no column {extra!r}; drop it from the data, or declare it in "
                "the catalog",
                None,
            )
        if reason == "column_not_in_dataframe":
            missing = quoted[1] if len(quoted) > 2 else column
            return RuleFailure(
                f"missing_column({missing})",
                f"the data has no column {missing!r}; every {name} column must be present "
                "(use NULL for an absent value)",
                None,
            )
        if reason == "wrong_dtype":
            return RuleFailure(f"wrong_dtype({column})", _first_line(error), None)
        if reason == "check_error" and check_name:
            return RuleFailure(
                check_name,
                f"could not be checked: {_first_line(error).split(': ', 1)[-1]}",
                None,
            )
        return RuleFailure(
            reason if not column or column == name else f"{reason}({column})",
            _first_line(error),
            None,
        )

    def failure(
        self,
        data: ir.Table,
        rule: str,
        count: int,
        *,
        parents: Mapping[str, ir.Table] | None = None,
        max_examples: int = 5,
    ) -> RuleFailure:
        """The report line of ``rule`` (a name from :meth:`rule_names`), which ``count`` rows
        of ``data`` break, with the keys of the first of them: what ``validate`` writes."""
        for column in self.table.columns:
            if rule == self.not_null_rule(column.name):
                return self._null_failure(data, column.name, max_examples, count)
        check = next((c for c in self.checks(parents) if c.name == rule), None)
        if check is None:
            raise KeyError(f"{self.table.name} has no rule {rule!r}")
        return self._rule_failure(data, check, max_examples, count)

    def _key_columns(self, extra: tuple[str, ...]) -> list[str]:
        return list(dict.fromkeys([*self.table.primary_key, *extra]))

    def _rule_failure(
        self, data: ir.Table, check: _Check, max_examples: int, count: int | None = None
    ) -> RuleFailure:
        failing = data.filter(~check.predicate(data).fill_null(True))
        shown = failing.select(*self._key_columns(check.columns))
        # Repeated keys side by side, then key order: the same rows whoever asks.
        shown = shown.order_by(*dict.fromkeys([*check.duplicates, *self.table.primary_key]))
        return RuleFailure(
            check.name,
            check.description,
            int(failing.count().execute()) if count is None else count,
            _examples(shown, max_examples),
        )

    def _null_failure(
        self, data: ir.Table, column: str, max_examples: int, count: int | None = None
    ) -> RuleFailure:
        failing = data.filter(data[column].isnull())
        shown = failing.select(*self._key_columns((column,))).order_by(*self.table.primary_key)
        return RuleFailure(
            self.not_null_rule(column),
            f"{column} is NOT NULL",
            int(failing.count().execute()) if count is None else count,
            _examples(shown, max_examples),
        )


def _as_pandera(predicate: Predicate) -> Callable[[Any], ir.BooleanValue]:
    """Adapt a table predicate to pandera's check signature (it passes an IbisData wrapper)."""

    def check(data: Any) -> ir.BooleanValue:
        result: ir.BooleanValue = predicate(data.table).fill_null(True)
        return result

    return check


def _examples(table: ir.Table, limit: int) -> tuple[dict[str, Any], ...]:
    return tuple(table.limit(limit).to_pyarrow().to_pylist())


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@cache
def contract_for(table: str) -> Contract:
    """The contract of the catalog table named ``table``."""
    return Contract(CATALOG[table])
