"""Pandera contracts derived from the catalog, and the readable reports they produce."""

from egregora.contracts.contract import Contract, contract_for
from egregora.contracts.report import ContractReport, RuleFailure

__all__ = ["Contract", "ContractReport", "RuleFailure", "contract_for"]
