"""The runner: messages into journals, posts, profiles, social cards and a site (`egregora run`).

Its names load their module on first use, so that ``egregora work`` (which writes windows)
does not import the ingest and the site builder that ``run_pipeline`` needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from egregora.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ imports each name
    from egregora.runner.model import Message, Window, WindowSpec
    from egregora.runner.pipeline import RunOptions, RunSummary, run_pipeline
    from egregora.runner.progress import Reporter, Silent
    from egregora.runner.writer import ExtractiveWriter, PostDraft, WindowInput, Writer, load_writer

__all__ = [
    "ExtractiveWriter",
    "Message",
    "PostDraft",
    "Reporter",
    "RunOptions",
    "RunSummary",
    "Silent",
    "Window",
    "WindowInput",
    "WindowSpec",
    "Writer",
    "load_writer",
    "run_pipeline",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    __all__,
    {
        "egregora.runner.model": ("Message", "Window", "WindowSpec"),
        "egregora.runner.pipeline": ("RunOptions", "RunSummary", "run_pipeline"),
        "egregora.runner.progress": ("Reporter", "Silent"),
        "egregora.runner.writer": (
            "ExtractiveWriter",
            "PostDraft",
            "WindowInput",
            "Writer",
            "load_writer",
        ),
    },
)
