"""How the runner reports progress: stages with a size, steps within them. The command line
draws these as progress bars; a library caller may pass nothing."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def stage(self, name: str, total: int | None = None) -> None:
        """A stage begins; ``total`` is how many steps it has, when known."""

    def advance(self, steps: int = 1) -> None:
        """Steps of the current stage are done."""

    def step(self, text: str) -> None:
        """What the current stage is doing now (for stages without a count)."""


class Silent:
    """A reporter that reports nothing."""

    def stage(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def step(self, text: str) -> None:
        pass
