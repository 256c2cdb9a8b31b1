"""Evaluation of distilled sets: the student protocol, a Lightning student, a plain loop and the runner."""

from lightning_dd.evaluation.loop import accuracy, train_student
from lightning_dd.evaluation.protocol import StudentRecipe, mean_std
from lightning_dd.evaluation.run import evaluate_artifact
from lightning_dd.evaluation.student import StudentClassifier

__all__ = ["StudentClassifier", "StudentRecipe", "accuracy", "evaluate_artifact", "mean_std", "train_student"]
