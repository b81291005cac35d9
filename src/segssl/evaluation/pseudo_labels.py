"""How good are a model's confident pseudo-labels? Coverage, accuracy and class balance per threshold.

Semi-supervised methods (FixMatch, UniMatch, pseudo-label self-training, ...) train on the pixels
whose confidence passes a threshold. Whether that helps depends on three numbers a user can
measure on images whose masks were held back: how many pixels pass (coverage), how many of those
are right (accuracy), and which classes they are (a threshold that keeps only road and sky adds
nothing for poles and signs). Counts are accumulated over a whole dataset, like the mIoU.
"""

from __future__ import annotations

import torch

from segssl.methods.semi.common import class_balanced_keep

Rule = float | tuple[float, float]  # a fixed threshold, or CBST's (portion, cap)


def rule_name(rule: Rule) -> str:
    return f"cbst p={rule[0]:g} cap={rule[1]:g}" if isinstance(rule, tuple) else f"{float(rule):g}"


class PseudoLabelStats:
    """Dataset-level counts of confident pseudo-labels against held-back masks, per selection rule.

    A rule is a threshold t (keep max softmax > t) or a pair (portion, cap): CBST's class-balanced
    selection (`class_balanced_keep`), ranked within each `update` batch as training ranks within a step.
    """

    def __init__(self, num_classes: int, rules: list[Rule], ignore_index: int = 255):
        self.k, self.ignore = num_classes, ignore_index
        self.rules = [(float(t[0]), float(t[1])) if isinstance(t, tuple) else float(t) for t in rules]
        n = len(self.rules)
        self.kept = torch.zeros(n, num_classes, dtype=torch.long)  # confident pixels, by predicted class
        self.correct = torch.zeros(n, num_classes, dtype=torch.long)  # ... of which right, by class
        self.gt = torch.zeros(num_classes, dtype=torch.long)  # valid pixels, by true class

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """logits (B, K, H, W); target (B, H, W) with `ignore_index` for unlabeled pixels."""
        conf, pred = logits.float().softmax(dim=1).max(dim=1)
        valid = target != self.ignore
        keeps = [
            class_balanced_keep(pred, conf, self.k, *t).bool()[valid] if isinstance(t, tuple) else conf[valid] > t
            for t in self.rules
        ]
        pred, target = pred[valid], target[valid]
        self.gt += torch.bincount(target, minlength=self.k)[: self.k]
        for i, keep in enumerate(keeps):
            p = pred[keep]
            self.kept[i] += torch.bincount(p, minlength=self.k)[: self.k]
            self.correct[i] += torch.bincount(p[p == target[keep]], minlength=self.k)[: self.k]

    def summary(self, classes: list[str]) -> list[dict]:
        """One row per threshold: coverage and accuracy (%), and per class: share of the confident
        labels, their precision, and recall = correct confident pixels / all pixels of that class."""
        total = max(int(self.gt.sum()), 1)
        rows = []
        for i, t in enumerate(self.rules):
            kept, correct = self.kept[i], self.correct[i]
            n = int(kept.sum())
            per_class = {}
            for c, name in enumerate(classes):
                per_class[name] = {
                    "share": 100.0 * int(kept[c]) / n if n else None,
                    "precision": 100.0 * int(correct[c]) / int(kept[c]) if kept[c] else None,
                    "recall": 100.0 * int(correct[c]) / int(self.gt[c]) if self.gt[c] else None,
                }
            rows.append(
                {
                    "rule": rule_name(t),
                    "threshold": None if isinstance(t, tuple) else t,
                    "coverage": 100.0 * n / total,
                    "accuracy": 100.0 * int(correct.sum()) / n if n else None,
                    "classes": per_class,
                }
            )
        return rows
