"""The hand-written sample rows are valid: the database and every contract accept them."""

from __future__ import annotations

import pytest
from ibis.backends.duckdb import Backend as DuckDBBackend

from egregora.contracts import contract_for
from egregora.schema.catalog import CATALOG


@pytest.mark.parametrize("name", CATALOG.names)
def test_sample_rows_pass_the_contract_in_place(filled: DuckDBBackend, name: str) -> None:
    parents = {t.name: filled.table(t.name) for t in CATALOG}
    report = contract_for(name).validate(filled.table(name), parents=parents)
    assert report.ok, str(report)
    assert report.rows == filled.table(name).count().execute() > 0
