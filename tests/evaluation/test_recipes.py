"""The named student recipes (``StudentRecipe.named``, ``STUDENT_RECIPES``): DC/DSA/DM's ``evaluate_synset``
("reference") and IDC's ``train.py`` ("idc"), their schedules, overrides, and the TrainRecipe they produce."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_dd.augment import DSA, IDCAugment
from lightning_dd.callbacks import DistilledSetEvaluator
from lightning_dd.data.types import DIGIT_DSA_STRATEGY
from lightning_dd.evaluation.protocol import DEFAULT_STUDENT_EPOCHS, STUDENT_RECIPES, StudentRecipe
from lightning_dd.training import TrainRecipe

IDC_STRATEGY = "color_crop_flip_scale_rotate"


def lrs_per_epoch(recipe: TrainRecipe) -> list[float]:
    """The learning rate each epoch trains with under the recipe's scheduler."""
    optimizer = recipe.optimizer([nn.Parameter(torch.zeros(1))])
    scheduler = recipe.scheduler(optimizer)
    out = []
    for _ in range(recipe.epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return out


def test_the_registry_holds_reference_and_idc() -> None:
    assert list(STUDENT_RECIPES) == ["reference", "idc"]
    assert STUDENT_RECIPES["reference"] == {}  # the defaults are the reference protocol


@pytest.mark.parametrize("epochs", [DEFAULT_STUDENT_EPOCHS, 300, 7])
def test_reference_is_the_default_recipe(epochs: int) -> None:
    recipe = StudentRecipe.named("reference", epochs=epochs)
    assert recipe == StudentRecipe(epochs=epochs) and recipe.name == "reference"
    assert recipe.batch_size == 256 and recipe.lr == 0.01 and recipe.lr_decay_factor == 0.1
    assert recipe.milestone_epochs == (epochs // 2,) and recipe.decay_epoch == epochs // 2
    assert recipe.augmentation == "dsa" and recipe.cutmix_prob == 0.0
    assert recipe.dsa_strategy == "color_crop_cutout_flip_scale_rotate"
    assert StudentRecipe.named("reference").epochs == DEFAULT_STUDENT_EPOCHS == 1000
    train = recipe.train_recipe()
    assert (train.augmentation, train.cutmix_prob, train.lr_milestones) == ("dsa", 0.0, (epochs // 2,))
    assert type(recipe.augmenter()) is DSA


def test_idc_recipe_at_the_published_epochs() -> None:
    recipe = StudentRecipe.named("idc", epochs=1000)
    assert recipe.name == "idc"
    assert recipe.batch_size == 64
    assert recipe.milestone_epochs == (666, 833) and recipe.decay_epoch == 666
    assert recipe.lr_decay_factor == 0.2 and recipe.lr == 0.01
    assert recipe.augmentation == "idc" and recipe.dsa_strategy == IDC_STRATEGY and recipe.cutmix_prob == 0.5
    assert StudentRecipe.named("idc") == recipe  # 1000 epochs by default


def test_idc_recipe_drops_flip_where_the_dataset_forbids_it() -> None:
    """IDC's remove_aug(..., 'flip') for digits: the artifact's flip-free strategy removes flip from the recipe's."""
    digits = StudentRecipe.named("idc", default_strategy=DIGIT_DSA_STRATEGY)
    assert digits.dsa_strategy == "color_crop_scale_rotate"
    with_flip = StudentRecipe.named("idc", default_strategy="color_crop_cutout_flip_scale_rotate")
    assert with_flip.dsa_strategy == IDC_STRATEGY
    assert StudentRecipe.named("reference", default_strategy=DIGIT_DSA_STRATEGY).dsa_strategy == DIGIT_DSA_STRATEGY


@pytest.mark.parametrize("epochs", [300, 1000, 7, 99, 601])
def test_idc_milestones_are_two_thirds_and_five_sixths(epochs: int) -> None:
    # IDC train.py: MultiStepLR(milestones=[2 * epochs // 3, 5 * epochs // 6], gamma=0.2)
    assert StudentRecipe.named("idc", epochs=epochs).milestone_epochs == (2 * epochs // 3, 5 * epochs // 6)
    assert StudentRecipe.named("idc", epochs=300).milestone_epochs == (200, 250)


def test_overrides_win_and_none_is_ignored() -> None:
    assert StudentRecipe.named("idc", epochs=300, batch_size=None, cutmix_prob=None) == StudentRecipe.named(
        "idc", epochs=300)
    recipe = StudentRecipe.named("idc", epochs=None, batch_size=32, cutmix_prob=0.0, dsa_strategy="crop")
    assert (recipe.epochs, recipe.batch_size, recipe.cutmix_prob, recipe.dsa_strategy) == (1000, 32, 0.0, "crop")
    assert (recipe.lr_decay_factor, recipe.augmentation, recipe.milestone_epochs) == (0.2, "idc", (666, 833))
    reference = StudentRecipe.named("reference", epochs=10, lr=0.05, augmentation="idc")
    assert (reference.lr, reference.augmentation, reference.batch_size, reference.milestone_epochs) == (
        0.05, "idc", 256, (5,))
    assert StudentRecipe.named("reference", epochs=10, batch_size=64).name == "reference"  # the recipe it came from


def test_unknown_name_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown evaluation recipe 'idc2'; allowed: reference, idc"):
        StudentRecipe.named("idc2")
    with pytest.raises(ValueError, match=r"TrainRecipe.augmentation must be one of"):
        StudentRecipe.named("idc", augmentation="mixup")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        StudentRecipe.named("idc", batch_size=0)


def test_idc_train_recipe_carries_augmentation_cutmix_and_schedule() -> None:
    recipe = StudentRecipe.named("idc", epochs=300)
    train = recipe.train_recipe()
    assert train == TrainRecipe(epochs=300, lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=64,
                                lr_milestones=(200, 250), lr_decay_factor=0.2, dsa_strategy=IDC_STRATEGY,
                                augmentation="idc", cutmix_prob=0.5)
    assert recipe.train_recipe(lr=0.03).lr == 0.03 and recipe.train_recipe(lr=0.03).cutmix_prob == 0.5
    lrs = lrs_per_epoch(train)
    assert lrs[0] == lrs[199] == 0.01
    assert lrs[200] == pytest.approx(0.002) and lrs[249] == pytest.approx(0.002)
    assert lrs[250] == pytest.approx(0.0004) and lrs[299] == pytest.approx(0.0004)
    aug = recipe.augmenter()
    assert isinstance(aug, IDCAugment) and aug.always == ("flip", "color") and aug.ops == ("crop", "scale", "rotate")


def test_evaluator_accepts_the_named_recipes_only() -> None:
    idc = DistilledSetEvaluator(recipe="idc", epochs=300, models=["mlp"], output="")
    assert idc.recipe == "idc" and idc.epochs == 300 and idc.batch_size is None
    assert DistilledSetEvaluator(recipe="idc", batch_size=32, output="").batch_size == 32
    assert DistilledSetEvaluator(output="").recipe == "reference"
    with pytest.raises(ValueError, match=r"unknown evaluation recipe 'foo'; allowed: reference, idc"):
        DistilledSetEvaluator(recipe="foo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DistilledSetEvaluator(recipe="idc", batch_size=0)
