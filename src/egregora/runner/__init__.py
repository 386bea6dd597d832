"""The runner: messages into journals, posts, profiles, social cards and a site (`egregora run`)."""

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
