"""The ``egregora`` command line: one Typer application, human or JSON output."""
