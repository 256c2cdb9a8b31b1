"""The ``lightning-dd`` command line.

* ``lightning-dd fit --config configs/trainer/reference.yaml --config configs/method/dm.yaml
  --config configs/data/cifar10.yaml --model.ipc 10 [--data.root DIR]
  [--trainer.max_steps N] [--seed_everything S] [--print_config]``: a LightningCLI over every
  :class:`~lightning_dd.methods.DistillationModule` (subclass mode) and :class:`~lightning_dd.data.RealDataModule`.
  ``max_steps`` counts distillation iterations; one seed (``seed_everything``) fixes the model's and the data's.
* ``lightning-dd evaluate|pretrain|cmi|export ...``: the side commands of :mod:`lightning_dd.commands`, each with
  ``--config`` and ``--print_config``; each prints one JSON line.
* ``lightning-dd --help``: every command.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from argparse import ArgumentError
from collections.abc import Sequence
from typing import Any

from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_dd import __version__
from lightning_dd.data import RealDataModule
from lightning_dd.methods import DistillationModule


class DistillationCLI(LightningCLI):
    """LightningCLI with the data -> model links and the defaults distillation needs; ``fit`` is its only
    subcommand (validate/test/predict mean nothing for a distillation module)."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {"fit": LightningCLI.subcommands()["fit"]}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.image_shape", "model.init_args.image_shape", apply_on="instantiate")
        parser.link_arguments("data.init_args.space", "model.init_args.space")
        parser.link_arguments("seed_everything", "model.init_args.seed", compute_fn=_seed_value)
        parser.link_arguments("seed_everything", "data.init_args.seed", compute_fn=_seed_value)
        # --data.* without a class_path means RealDataModule; --data.class_path takes a subclass of your own
        parser.set_defaults({"data": {"class_path": "lightning_dd.data.RealDataModule"}})

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """The Trainer, with :class:`~lightning_dd.callbacks.DistillationProgressBar` unless the config turns the
        bar off or brings its own."""
        from lightning.pytorch.callbacks import ProgressBar

        from lightning_dd.callbacks import DistillationProgressBar

        config = self._get(self.config_init, "trainer", default={})
        callbacks = list(config.get("callbacks") or [])
        if config.get("enable_progress_bar", True) is not False and not any(
                isinstance(cb, ProgressBar) for cb in callbacks):
            config["callbacks"] = [*callbacks, DistillationProgressBar()]
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        """Under a spawning strategy the loop runs in child processes: the parent holds Ctrl-C until they saved."""
        from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher

        from lightning_dd.methods.interrupt import GracefulInterrupt

        self.parent_interrupt: GracefulInterrupt | None = None
        if isinstance(self.trainer.strategy.launcher, _MultiProcessingLauncher):
            self.parent_interrupt = GracefulInterrupt(announce=False)
            self.parent_interrupt.install()

    def after_fit(self) -> None:
        if self.parent_interrupt is not None:
            self.parent_interrupt.restore()

    def _parse_ckpt_path(self) -> None:
        """Check ``--ckpt_path`` before anything runs, and do *not* let its hyper-parameters override the command
        line (LightningCLI's default): the method checks the resume policy itself and names every difference."""
        if not self.config.get("subcommand"):
            return
        ckpt_path = self.config[self.config.subcommand].get("ckpt_path")
        if ckpt_path:
            from lightning_dd.methods.resume import read_checkpoint

            read_checkpoint(ckpt_path)


def _seed_value(seed: Any) -> int:
    if isinstance(seed, bool) or seed is None:
        raise ValueError("seed_everything must be an integer for lightning-dd (one seed fixes the whole run)")
    return int(seed)


_DESCRIPTION = ("Dataset distillation with PyTorch Lightning: condense a real dataset into a few synthetic images "
                "per class.")


def fit_cli(args: Sequence[str] | None = None, run: bool = True, exit_on_error: bool = True) -> DistillationCLI:
    """Build (and by default run) the distillation LightningCLI on ``args``.

    ``exit_on_error=False`` raises parse errors (``argparse.ArgumentError``) instead of printing usage and exiting;
    :func:`main` uses it to print one message.
    """
    return DistillationCLI(
        DistillationModule,
        RealDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        seed_everything_default=0,
        # the class-balanced batch sampler is rank-aware itself (style.md pitfall 7)
        trainer_defaults={"use_distributed_sampler": False},
        parser_kwargs={"version": __version__, "prog": "lightning-dd", "description": _DESCRIPTION,
                       "exit_on_error": exit_on_error},
        save_config_kwargs={"overwrite": True},
        args=list(args) if args is not None else None,
        run=run,
    )


#: exceptions that report a user's mistake (bad value, missing file, ...): shown as one message, no traceback
USER_ERRORS = (ValueError, TypeError, OSError, FloatingPointError, ArgumentError, MisconfigurationException)
#: set to 1 to see the full traceback of a user error too
DEBUG_ENV = "LIGHTNING_DD_DEBUG"


#: Lightning's advertising and notices about Lightning's own internals, hidden on the command line (warnings about
#: the user's setup -- dataloader workers, precision, devices -- stay)
_LIGHTNING_NOISE = ("💡 Tip:", "`tensorboardX` has been removed", "isinstance(treespec, LeafSpec)",
                    "`LightningModule.configure_optimizers` returned `None`")


class _DropLightningNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in _LIGHTNING_NOISE)


def quiet_lightning() -> None:
    """Hide :data:`_LIGHTNING_NOISE` from the log and from ``warnings`` (command line only, idempotent)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLightningNoise) for f in logger.filters):
            logger.addFilter(_DropLightningNoise())
    for noise in _LIGHTNING_NOISE:
        warnings.filterwarnings("ignore", message=f".*{re.escape(noise)}.*")


def overview() -> str:
    """``lightning-dd --help``: every command with its one-line summary."""
    from lightning_dd.commands import COMMANDS, summary

    lines = [f"usage: lightning-dd {{fit,{','.join(COMMANDS)}}} [--config FILE] [--print_config] [options]", "",
             _DESCRIPTION, "", "commands:",
             f"  {'fit':<10} distil a synthetic set (LightningCLI: --model, --data, --trainer, --ckpt_path)"]
    lines += [f"  {name:<10} {summary(name)}" for name in COMMANDS]
    lines += ["", "`lightning-dd <command> --help` lists a command's options."]
    return "\n".join(lines)


def _available_methods() -> str:
    import lightning_dd.methods as methods

    names = [name for name in methods.__all__
             if isinstance(getattr(methods, name), type) and issubclass(getattr(methods, name), DistillationModule)
             and not getattr(getattr(methods, name), "__abstractmethods__", None)]
    return ", ".join(names)


def _raised_here(err: BaseException) -> bool:
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"{os.sep}lightning_dd{os.sep}" in tb.tb_frame.f_code.co_filename


def user_error_message(err: BaseException) -> str | None:
    """The message for a user error (its innermost user-error cause), or ``None`` for anything else (a bug)."""
    top = str(err)
    if isinstance(err, ArgumentError) and top.startswith('Parser key "model"') and "value type: <class 'str'>" in top:
        given = top.rsplit("Given value:", 1)[-1].strip()
        return (f"unknown method {given!r} for --model; available: {_available_methods()} (lightning_dd.methods), "
                "or the import path of your own DistillationModule subclass")
    if not isinstance(err, USER_ERRORS):
        return None
    chain = [err]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)  # type: ignore[arg-type]
    users = [e for e in chain if isinstance(e, USER_ERRORS)]
    # the innermost error raised by this library says what was wrong (outer ones wrap it; inner foreign ones are
    # its cause, e.g. an OSError of tempfile); without one, the innermost user error of the chain
    ours = [e for e in users if _raised_here(e)]
    root = ours[-1] if ours else users[-1]
    message = str(root).strip()
    if not isinstance(root, (ValueError, ArgumentError, OSError)):
        message = f"{type(root).__name__}: {message}"
    return message


def _interrupted(cli: DistillationCLI) -> bool:
    """Ctrl-C stopped the run (the module says so; under ddp_spawn, the parent process's guard)."""
    parent = getattr(cli, "parent_interrupt", None)
    return (parent is not None and parent.requested) or getattr(cli.model, "interrupted_at", None) is not None


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of ``lightning-dd`` and ``python -m lightning_dd``.

    A user error prints one message (``lightning-dd <command>: error: ...``) and exits with status 2; set
    ``LIGHTNING_DD_DEBUG=1`` for its traceback. A run stopped by Ctrl-C (set and checkpoint saved) exits with 130.
    """
    from lightning_dd.commands import COMMANDS, run_command

    quiet_lightning()
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or argv[0] in ("-h", "--help"):
        print(overview())
        sys.exit(0)
    command = f"lightning-dd {argv[0]}" if not argv[0].startswith("-") else "lightning-dd"
    try:
        if argv[0] in COMMANDS:
            run_command(argv[0], argv[1:], exit_on_error=False)
            return
        # args=None lets LightningCLI read sys.argv itself (passing both warns about "args and command line arguments")
        cli = fit_cli(None if args is None else argv, exit_on_error=False)
    except Exception as err:
        message = user_error_message(err)
        if message is None or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(f"{command}: error: {message}\n(set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr, flush=True)
        sys.exit(2)
    if _interrupted(cli):
        sys.exit(130)
