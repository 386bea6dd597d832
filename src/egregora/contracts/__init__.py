"""Pandera contracts derived from the catalog, and the readable reports they produce.

``Contract`` and ``contract_for`` load pandera (and pandas) on first use only: a write that
breaks no rule never needs them, and they cost an ingest 60 MB of memory and every command
their import time.
"""

from typing import TYPE_CHECKING, Any

from egregora.contracts.report import ContractReport, RuleFailure, not_null_rule

if TYPE_CHECKING:
    from egregora.contracts.contract import Contract, contract_for

__all__ = ["Contract", "ContractReport", "RuleFailure", "contract_for", "not_null_rule"]


def __getattr__(name: str) -> Any:
    if name in ("Contract", "contract_for"):
        from egregora.contracts import contract

        return getattr(contract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
