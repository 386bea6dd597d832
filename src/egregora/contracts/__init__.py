"""Pandera contracts derived from the catalog, and the readable reports they produce."""

import os

# Importing pandera sets PYARROW_IGNORE_TIMEZONE=1 for the whole process, after which pyarrow
# converts zone-aware datetimes by their wall-clock time (moving the instant). Put it back.
_SAVED = os.environ.get("PYARROW_IGNORE_TIMEZONE")

from egregora.contracts.contract import Contract, contract_for  # noqa: E402
from egregora.contracts.report import ContractReport, RuleFailure  # noqa: E402

if _SAVED is None:
    os.environ.pop("PYARROW_IGNORE_TIMEZONE", None)
else:
    os.environ["PYARROW_IGNORE_TIMEZONE"] = _SAVED

__all__ = ["Contract", "ContractReport", "RuleFailure", "contract_for"]
