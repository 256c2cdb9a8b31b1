"""The side commands of ``lightning-dd`` (beside ``fit``), each a typed function whose signature is its flags.

``run_command(name, argv)`` builds a jsonargparse parser from the function (``--config FILE``, ``--print_config``,
``--help`` with the docstring's argument help; option groups ``--data.*`` / ``--trainer.*`` as in ``fit``), calls it
and prints its result as one JSON line on stdout. Lists are given as ``--models [convnet,resnet18]``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser

from lightning_dd._atomic import json_text
from lightning_dd.commands.cmi import cmi
from lightning_dd.commands.evaluate import evaluate
from lightning_dd.commands.experts import experts
from lightning_dd.commands.export import export
from lightning_dd.commands.pretrain import pretrain

__all__ = ["COMMANDS", "build_parser", "cmi", "evaluate", "experts", "export", "pretrain", "run_command"]

#: name -> function of every side command
COMMANDS: dict[str, Callable[..., dict[str, Any]]] = {
    "evaluate": evaluate,
    "pretrain": pretrain,
    "experts": experts,
    "cmi": cmi,
    "export": export,
}


def summary(name: str) -> str:
    """The first line of the command's docstring."""
    return (inspect.getdoc(COMMANDS[name]) or "").splitlines()[0]


def build_parser(name: str, exit_on_error: bool = True) -> ArgumentParser:
    function = COMMANDS[name]
    description = (inspect.getdoc(function) or "").split("\n\nArgs:")[0]  # the arguments' help is per option
    parser = ArgumentParser(prog=f"lightning-dd {name}", description=description, exit_on_error=exit_on_error)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options")
    parser.add_function_arguments(function, as_group=False)
    return parser


def run_command(name: str, argv: Sequence[str], exit_on_error: bool = True) -> dict[str, Any]:
    """Parse ``argv`` for command ``name``, run it, print its result as one JSON line; returns the result."""
    parser = build_parser(name, exit_on_error)
    cfg = parser.parse_args(list(argv))
    init = parser.instantiate_classes(cfg)
    params = inspect.signature(COMMANDS[name]).parameters
    result = COMMANDS[name](**{key: init[key] for key in params})
    print(json_text(result, indent=None), flush=True)
    return result
