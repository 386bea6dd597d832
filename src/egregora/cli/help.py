"""How the help reads: ``-h`` beside ``--help``, flags shown without a type, arguments in
capitals.

Typer prints a type beside every option, ``<bool>`` beside each flag too, which reads as if
the flag took a value, and names arguments in lower case (``{export}``). The root group tidies
its own parameters and those of every group and command under it before help is drawn:
flags lose the placeholder, arguments are written ``EXPORT``; typed options keep theirs.
"""

from __future__ import annotations

from typing import Any

import typer.core

HELP_OPTION_NAMES = ["-h", "--help"]
ARGS = "egregora.args"  # where the root context keeps the words of the command line


class HelpGroup(typer.core.TyperGroup):
    """The root group: its commands' flags, the help option included, show no placeholder."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidied(super().get_params(ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta[ARGS] = list(args)  # the root's callback reads what follows (--json)
        return list(super().parse_args(ctx, args))

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
