"""The plain-PyTorch student loop (``train_student``) and the summary statistics of the protocol."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lightning_dd.artifact import DistilledSet
from lightning_dd.evaluation import StudentRecipe, accuracy, mean_std, train_student

# MLP students without augmentation learn digits (about 0.9 test accuracy) in 40 steps.
FAST = StudentRecipe(epochs=20, batch_size=50, lr=0.1, dsa_strategy="none")


def test_fixed_seed_keys_are_deterministic_and_leave_global_rng_alone(digits_ipc10, digits_test) -> None:
    recipe = StudentRecipe(epochs=4, batch_size=50, dsa_strategy=digits_ipc10.dsa_strategy)  # DSA on
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    first = train_student(digits_ipc10, *digits_test, "mlp", recipe, seed_keys=(3, 1))
    assert torch.equal(torch.get_rng_state(), state), "train_student consumed the global RNG"
    second = train_student(digits_ipc10, *digits_test, "mlp", recipe, seed_keys=(3, 1))
    assert first == second
    others = {train_student(digits_ipc10, *digits_test, "mlp", recipe, seed_keys=(3, k)) for k in (2, 3)}
    assert others != {first}, "different seed keys should give different students"
    assert torch.equal(torch.get_rng_state(), state)


def test_global_rng_does_not_change_the_result(digits_ipc10, digits_test) -> None:
    recipe = StudentRecipe(epochs=3, batch_size=50, dsa_strategy=digits_ipc10.dsa_strategy)
    torch.manual_seed(0)
    a = train_student(digits_ipc10, *digits_test, "convnet_w32", recipe, seed_keys=(5,))
    torch.manual_seed(1)
    b = train_student(digits_ipc10, *digits_test, "convnet_w32", recipe, seed_keys=(5,))
    assert a == b


def test_real_subset_beats_chance_and_shuffled_labels_do_not(digits_ipc10, digits_test) -> None:
    real = train_student(digits_ipc10, *digits_test, "mlp", FAST, seed_keys=(0,))
    assert real > 0.5
    perm = torch.randperm(digits_ipc10.labels.numel(), generator=torch.Generator().manual_seed(0))
    shuffled = dataclasses.replace(digits_ipc10, labels=digits_ipc10.labels[perm])
    assert not torch.equal(shuffled.labels, digits_ipc10.labels)
    assert train_student(shuffled, *digits_test, "mlp", FAST, seed_keys=(0,)) < 0.3


def test_soft_labels_are_the_training_target(digits_ipc10, digits_test) -> None:
    labels = digits_ipc10.labels
    right = dataclasses.replace(digits_ipc10, soft_labels=10.0 * torch.nn.functional.one_hot(labels, 10).float())
    wrong = dataclasses.replace(
        digits_ipc10, soft_labels=10.0 * torch.nn.functional.one_hot((labels + 1) % 10, 10).float()
    )
    assert train_student(right, *digits_test, "mlp", FAST, seed_keys=(0,)) > 0.5
    # the hard labels are unchanged: a student that ignored the soft labels would score as high
    assert train_student(wrong, *digits_test, "mlp", FAST, seed_keys=(0,)) < 0.2


def test_learned_lr_is_used_unless_disabled(digits_ipc10, digits_test) -> None:
    frozen = dataclasses.replace(digits_ipc10, lr=1e-12)  # a learned lr this small means no learning at all
    assert train_student(frozen, *digits_test, "mlp", FAST, seed_keys=(0,)) < 0.3
    recipe = dataclasses.replace(FAST, use_learned_lr=False)
    assert train_student(frozen, *digits_test, "mlp", recipe, seed_keys=(0,)) > 0.5


def test_accuracy_works_on_a_parameterised_net() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 4, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.eye(4))
    images = torch.eye(4).view(4, 1, 2, 2)
    assert accuracy(net, images, torch.tensor([0, 1, 0, 3]), batch_size=3) == 0.75


@pytest.mark.parametrize("values", [[90.0], [1.0, 2.0], [10.5, 20.25, 30.0, 12.125], [55.5, 55.5, 55.5]])
def test_mean_std_is_mean_and_population_std(values: list[float]) -> None:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    got = mean_std(values)
    assert got[0] == pytest.approx(mean, abs=1e-12)
    assert got[1] == pytest.approx(std, abs=1e-12)


def test_mean_std_of_nothing_fails() -> None:
    with pytest.raises(ValueError, match="no accuracies"):
        mean_std([])


def test_recipe_validates_and_decays_at_half() -> None:
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        StudentRecipe(epochs=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        StudentRecipe(batch_size=0)
    recipe = StudentRecipe(epochs=7, lr=0.5)
    optimizer = recipe.optimizer([torch.nn.Parameter(torch.zeros(1))])
    scheduler = recipe.scheduler(optimizer)
    lrs = []
    for _ in range(7):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.5] * 3 + [0.05] * 4)
    identity = StudentRecipe(dsa_strategy="none").augmenter()
    assert identity.is_identity  # "no augmentation" is the identity DSA, never None
    assert not StudentRecipe().augmenter().is_identity
    assert StudentRecipe().epochs == 1000  # the published protocol; reduced runs pass 300 explicitly
    with pytest.raises(ValueError, match="unknown DSA op 'nope'"):
        StudentRecipe(dsa_strategy="color_nope")


def test_unknown_network_fails(digits_ipc10: DistilledSet, digits_test) -> None:
    with pytest.raises(ValueError, match="unknown network 'nope'"):
        train_student(digits_ipc10, *digits_test, "nope", FAST)
