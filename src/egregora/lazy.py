"""Package names that import their module on first use (PEP 562).

A package that re-exports its submodules' names makes every import of one submodule pay
for all of them; a command that needs one part (``egregora work`` writes windows, it does
not ingest) then starts seconds later. Beside the root, importing the standard library only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exported: Sequence[str], homes: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public names (``exported``, its
    ``__all__``) live in the modules ``homes`` maps to them: each name is imported from its
    module when first read, then kept in the package's namespace."""
    home_of = {name: module for module, names in homes.items() for name in names}
    if sorted(home_of) != sorted(exported):
        raise ImportError(f"{package}: __all__ and the modules of its names disagree")

    def __getattr__(name: str) -> Any:
        home = home_of.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        vars(importlib.import_module(package))[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *home_of})

    return __getattr__, __dir__
