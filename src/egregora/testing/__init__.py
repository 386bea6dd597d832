"""Contract checks for code that writes egregora's tables, for its users' own tests.

``assert_conforms(table, data)`` checks rows (Arrow, pandas, Ibis, or a list of dicts) against
a table's contract and fails with the readable report. Installing egregora registers a pytest
plugin (``egregora.testing.plugin``, entry point ``pytest11``) whose ``egregora_store`` fixture
gives each test a fresh store at the latest schema; no conftest is needed.
"""

from egregora.testing.conform import as_table, assert_conforms

__all__ = ["as_table", "assert_conforms"]
