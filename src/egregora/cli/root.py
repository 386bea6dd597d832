"""The root group: how the help reads (``-h`` beside ``--help``, flags shown without a type,
arguments in capitals) and usage errors as JSON under ``--json``.

Typer prints a type beside every option, ``<bool>`` beside each flag too, which reads as if
the flag took a value, and names arguments in lower case (``{export}``). The root group tidies
its own parameters and those of every group and command under it before help is drawn:
flags lose the placeholder, arguments are written ``EXPORT``; typed options keep theirs.
"""

from __future__ import annotations

from typing import Any

import typer.core
from typer._click.exceptions import UsageError  # the Click that Typer ships, as typer.core uses

from egregora.cli.output import fail

HELP_OPTION_NAMES = ["-h", "--help"]
ARGS = "egregora.args"  # where the root context keeps the words of the command line


class RootGroup(typer.core.TyperGroup):
    """The root group: tidy help for every command under it; usage errors as JSON."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidied(super().get_params(ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta[ARGS] = list(args)  # the root's callback reads what follows (--json)
        return list(super().parse_args(ctx, args))

    def invoke(self, ctx: Any) -> Any:
        """A usage error of a command given ``--json`` is one JSON object on stdout too."""
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            if "--json" not in ctx.meta.get(ARGS, ()):
                raise
            fail(exc.format_message(), code=exc.exit_code, as_json=True, kind="UsageError")

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _tidy_tree(command, ctx)
        return command


def _tidy_tree(command: Any, ctx: Any) -> None:
    """Clear flag placeholders on ``command`` and, for a group, on everything under it."""
    _tidied(command.get_params(ctx))
    for sub in getattr(command, "commands", {}).values():
        _tidy_tree(sub, ctx)


def _tidied(params: list[Any]) -> list[Any]:
    for param in params:
        if param.metavar is not None:
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""  # typer shows the metavar, when one is set, instead of <bool>
        elif param.param_type_name == "argument" and param.name:
            param.metavar = param.name.upper()  # EXPORT, as usage lines write a placeholder
    return params
