"""The ``lightning-dd`` command line.

* ``lightning-dd fit --config configs/trainer/reference.yaml --config configs/method/dm.yaml
  --config configs/data/cifar10.yaml --model.ipc 10 [--data.root DIR]
  [--trainer.max_steps N] [--seed_everything S] [--print_config]``: a LightningCLI over every
  :class:`~lightning_dd.methods.DistillationModule` (subclass mode) and :class:`~lightning_dd.data.RealDataModule`.
  ``max_steps`` counts distillation iterations; one seed (``seed_everything``) fixes the model's and the data's.
* ``lightning-dd evaluate --distilled FILE [--data.root DIR] [--runs 5] [--epochs 1000] [--models convnet resnet18]``:
  trains fresh students on an artifact and prints one JSON line with mean and population std per architecture.
"""

from __future__ import annotations

import os
import sys
from argparse import ArgumentError
from collections.abc import Callable, Sequence
from typing import Any

from jsonargparse import ArgumentParser
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_dd import __version__
from lightning_dd.data import RealDataModule
from lightning_dd.methods import DistillationModule


class DistillationCLI(LightningCLI):
    """LightningCLI with the data -> model links and the defaults distillation needs."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.image_shape", "model.init_args.image_shape", apply_on="instantiate")
        parser.link_arguments("data.space", "model.init_args.space")
        parser.link_arguments("seed_everything", "model.init_args.seed", compute_fn=_seed_value)
        parser.link_arguments("seed_everything", "data.seed", compute_fn=_seed_value)

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


_DESCRIPTION = (
    "Dataset distillation with PyTorch Lightning. `lightning-dd fit --config FILE` distills (LightningCLI); "
    "`lightning-dd evaluate --distilled FILE` trains fresh students on an artifact; "
    "`lightning-dd pretrain --output POOL` trains the proxy networks of the CMI/IID regularizers; "
    "`lightning-dd cmi --distilled FILE --pool POOL` measures a set's CMI (each has --help)."
)


def fit_cli(args: Sequence[str] | None = None, run: bool = True, exit_on_error: bool = True) -> DistillationCLI:
    """Build (and by default run) the distillation LightningCLI on ``args``.

    ``exit_on_error=False`` raises parse errors (``argparse.ArgumentError``) instead of printing usage and exiting;
    :func:`main` uses it to print one message.
    """
    return DistillationCLI(
        DistillationModule,
        RealDataModule,
        subclass_mode_model=True,
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


def evaluate_command(args: Sequence[str]) -> dict[str, Any]:
    """``lightning-dd evaluate``: students on an artifact; prints (and optionally writes) one JSON result line."""
    from lightning_dd._atomic import atomic_json_dump, check_writable, json_text, write_or_fallback
    from lightning_dd.evaluation.protocol import DEFAULT_STUDENT_EPOCHS
    from lightning_dd.evaluation.run import evaluate_artifact

    parser = ArgumentParser(prog="lightning-dd evaluate", description=evaluate_command.__doc__)
    parser.add_argument("--distilled", type=str, required=True, help="artifact written by `lightning-dd fit`")
    parser.add_argument("--data.root", type=str | None, default=None, help="root of the real dataset (test split)")
    parser.add_argument("--data.download", type=bool, default=False, help="let torchvision download the test split")
    parser.add_argument("--runs", type=int, default=5, help="students per architecture")
    parser.add_argument("--epochs", type=int, default=DEFAULT_STUDENT_EPOCHS,
                        help="student training epochs (published protocol: 1000; reduced CPU runs use 300)")
    parser.add_argument("--models", type=str, default=["convnet"], nargs="+", help="student architectures")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=str | None, default=None, help="also write the JSON result here")
    parser.add_argument("--trainer.accelerator", type=str, default="auto")
    parser.add_argument("--trainer.devices", type=int | str | list[int], default=1)
    parser.add_argument("--trainer.precision", type=str | None, default=None, help="e.g. 32-true, bf16-mixed, 16-mixed")
    parser.add_argument("--trainer.strategy", type=str, default="auto")
    cfg = parser.parse_args(list(args))
    if cfg.output:
        check_writable(cfg.output, "--output")  # now, not after the students trained
    result = evaluate_artifact(
        cfg.distilled,
        root=cfg.data.root,
        download=cfg.data.download,
        models=cfg.models,
        runs=cfg.runs,
        epochs=cfg.epochs,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        trainer_kwargs=dict(cfg.trainer),
    )
    print(json_text(result, indent=None), flush=True)
    if cfg.output:
        write_or_fallback(cfg.output, lambda p: atomic_json_dump(result, p), "evaluation result")
    return result


def pretrain_command(args: Sequence[str]) -> dict[str, Any]:
    """``lightning-dd pretrain``: train K proxy networks on the real train split and write one pool file.

    ``--recipe cmi`` (default; ndhg1213/CMIDD, weight decay 1e-3) or ``--recipe iid`` (VincenDen/IID, 5e-4) sets
    the network, epochs and SGD settings; an explicit ``--epochs``, ``--weight_decay``, ... overrides its value.
    """
    import torch

    from lightning_dd._atomic import check_writable, json_text, write_or_fallback
    from lightning_dd.pretrained import DEFAULT_PRETRAIN_RECIPE, PRETRAIN_RECIPES, pretrain_proxies
    from lightning_dd.seeding import STREAM_PRETRAIN_SUBSET, make_generator

    def from_recipe(what: str) -> str:
        values = ", ".join(f"{name}: {r.network if what == 'network' else getattr(r.train, what)}"
                           for name, r in PRETRAIN_RECIPES.items())
        return f"default: the recipe's ({values})"

    parser = ArgumentParser(prog="lightning-dd pretrain", description=pretrain_command.__doc__)
    parser.add_argument("--data.dataset", type=str, default="digits")
    parser.add_argument("--data.root", type=str | None, default=None)
    parser.add_argument("--data.download", type=bool, default=False)
    parser.add_argument("--output", type=str, required=True, help="pool file to write")
    parser.add_argument("--recipe", type=str, default=DEFAULT_PRETRAIN_RECIPE,
                        help=f"pretraining recipe, one of {', '.join(PRETRAIN_RECIPES)} (sets the defaults below)")
    parser.add_argument("--num_models", type=int, default=5, help="K proxies (official: 1000; a few suffice)")
    parser.add_argument("--epochs", type=int | None, default=None, help=f"epochs per proxy; {from_recipe('epochs')}")
    parser.add_argument("--network", type=str | None, default=None, help=f"zoo name; {from_recipe('network')}")
    parser.add_argument("--lr", type=float | None, default=None, help=f"constant SGD lr; {from_recipe('lr')}")
    parser.add_argument("--momentum", type=float | None, default=None, help=from_recipe("momentum"))
    parser.add_argument("--weight_decay", type=float | None, default=None, help=from_recipe("weight_decay"))
    parser.add_argument("--batch_size", type=int | None, default=None, help=from_recipe("batch_size"))
    parser.add_argument("--max_images_per_class", type=int | None, default=None,
                        help="train on a seeded random subset of this many images per class (cheaper proxies)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", type=str, default="auto", help="auto, cpu, cuda, cuda:1, ...")
    cfg = parser.parse_args(list(args))
    if cfg.recipe not in PRETRAIN_RECIPES:  # before reading any data
        raise ValueError(f"unknown --recipe {cfg.recipe!r}; allowed: {', '.join(PRETRAIN_RECIPES)}")
    check_writable(cfg.output, "pool --output")  # now, not after the proxies trained
    data = RealDataModule(cfg.data.dataset, root=cfg.data.root, download=cfg.data.download)
    data.prepare_data()
    store = data.load_train()
    indices = torch.arange(store.labels.shape[0])
    if cfg.max_images_per_class is not None:
        if cfg.max_images_per_class < 1:
            raise ValueError(f"max_images_per_class must be >= 1, got {cfg.max_images_per_class}")
        generator = make_generator(cfg.seed, STREAM_PRETRAIN_SUBSET)
        indices = torch.cat([idx[torch.randperm(idx.numel(), generator=generator)[: cfg.max_images_per_class]]
                             for idx in store.indices_by_class])
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    pool = pretrain_proxies(
        data.normalize(store.images[indices]), store.labels[indices], dataset=data.info.name,
        num_classes=data.num_classes, mean=data.mean, std=data.std, space="normalized", num_models=cfg.num_models,
        recipe=cfg.recipe, epochs=cfg.epochs, network=cfg.network, lr=cfg.lr, momentum=cfg.momentum,
        weight_decay=cfg.weight_decay, batch_size=cfg.batch_size, seed=cfg.seed, device=device,
    )
    path = write_or_fallback(cfg.output, pool.save, "proxy pool")
    result = {"pool": str(path), "dataset": pool.dataset, "network": pool.network, "num_models": len(pool),
              "recipe": cfg.recipe, "weight_decay": pool.info["weight_decay"],
              "train_accuracy": pool.info["train_accuracy"]}
    print(json_text(result, indent=None), flush=True)
    return result


def cmi_command(args: Sequence[str]) -> dict[str, Any]:
    """``lightning-dd cmi``: the CMI of a distilled set under every proxy of a pool (mean and per proxy)."""
    import math

    import torch

    from lightning_dd._atomic import json_text
    from lightning_dd.artifact import DistilledSet
    from lightning_dd.losses import CMILoss
    from lightning_dd.pretrained import ProxyPool

    parser = ArgumentParser(prog="lightning-dd cmi", description=cmi_command.__doc__)
    parser.add_argument("--distilled", type=str, required=True)
    parser.add_argument("--pool", type=str, required=True)
    parser.add_argument("--output", type=str, default="features", help="features (official) or logits")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--reduction", type=str, default="global", help="global or per_class")
    cfg = parser.parse_args(list(args))
    distilled = DistilledSet.load(cfg.distilled)
    pool = ProxyPool.load(cfg.pool)
    pool.check_compatible(distilled.dataset, distilled.image_shape, distilled.mean, distilled.std, distilled.space,
                          source=f"proxy pool {cfg.pool}")
    loss = CMILoss(output=cfg.output, temperature=cfg.temperature, reduction=cfg.reduction)
    x = pool.prepare_input(distilled.images, distilled.space)
    with torch.no_grad():
        values = [float(loss(x, distilled.labels, net, distilled.num_classes)) for net in pool.networks]
    broken = [k for k, v in enumerate(values) if not math.isfinite(v)]
    if broken:
        raise ValueError(f"the CMI is not finite under the proxies {broken} of {cfg.pool} ({values}): their outputs "
                         "overflow on this set; check the pool and the set")
    result = {"distilled": cfg.distilled, "method": distilled.method, "ipc": distilled.ipc, "pool": cfg.pool,
              "cmi_mean": sum(values) / len(values), "cmi_per_proxy": values}
    print(json_text(result, indent=None), flush=True)
    return result


#: subcommands that are not Trainer entry points
COMMANDS: dict[str, Callable[[Sequence[str]], Any]] = {
    "evaluate": evaluate_command,
    "pretrain": pretrain_command,
    "cmi": cmi_command,
}


#: exceptions that report a user's mistake (bad value, missing file, ...): shown as one message, no traceback
USER_ERRORS = (ValueError, TypeError, OSError, FloatingPointError, ArgumentError, MisconfigurationException)
#: set to 1 to see the full traceback of a user error too
DEBUG_ENV = "LIGHTNING_DD_DEBUG"


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
    from lightning_dd.methods.interrupt import GracefulInterrupt

    trainer = getattr(cli, "trainer", None)
    parent = getattr(cli, "parent_interrupt", None)
    return (parent is not None and parent.requested) or any(
        isinstance(cb, GracefulInterrupt) and cb.interrupted_at is not None for cb in getattr(trainer, "callbacks", []))


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of ``lightning-dd`` and ``python -m lightning_dd``.

    A user error prints one message (``lightning-dd <command>: error: ...``) and exits with status 2; set
    ``LIGHTNING_DD_DEBUG=1`` for its traceback. A run stopped by Ctrl-C (set and checkpoint saved) exits with 130.
    """
    argv = list(sys.argv[1:] if args is None else args)
    command = f"lightning-dd {argv[0]}" if argv and not argv[0].startswith("-") else "lightning-dd"
    try:
        if argv and argv[0] in COMMANDS:
            COMMANDS[argv[0]](argv[1:])
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
