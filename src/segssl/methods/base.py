"""The method protocol: a thin recipe composing models and losses for one training step.

The Lightning module owns everything generic (optimiser, schedule, validation, checkpoints,
logging); a method only says which inputs it needs, computes its loss, and names the model to
evaluate. That keeps each paper's recipe in one short file.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field

import torch
from torch import nn

from segssl.data.source import ClassInfo
from segssl.errors import SegsslError
from segssl.models.segmodel import SegModel, build_model

METHODS: dict[str, type[Method]] = {}

# modules imported lazily when a name is looked up, so `import segssl` stays fast
_METHOD_MODULES = (
    "segssl.methods.supervised",
    "segssl.methods.ssl",
    "segssl.methods.semi",
)


def register(name: str):
    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        METHODS[name] = cls
        return cls

    return deco


@dataclass
class StepOutput:
    loss: torch.Tensor
    logs: dict[str, float | torch.Tensor] = field(default_factory=dict)


class Method(nn.Module, metaclass=abc.ABCMeta):
    """Base recipe. `inputs` names the loaders a step needs: labeled | unlabeled | views."""

    name = "method"
    inputs: tuple[str, ...] = ("labeled",)
    kind = "segmenter"  # what the checkpoint holds: a segmenter or a pretrained backbone

    def __init__(self, cfg: dict, info: ClassInfo):
        super().__init__()
        self.cfg, self.info = cfg, info
        self.args = dict(cfg.get("method_args") or {})

    def supervised_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The labeled-pixel loss every method shares (CE [+ Dice], class weights from `train`)."""
        from segssl.losses.segmentation import supervised_loss

        t = self.cfg["train"]
        w = getattr(self, "class_weights", None)
        return supervised_loss(
            logits,
            target,
            self.info.ignore_index,
            t.get("loss", "ce"),
            float(t.get("dice_weight", 0.5)),
            weight=w,
        )

    def set_class_weights(self, weights: torch.Tensor | None) -> None:
        """Per-class CE weights computed from the labeled masks (see training/class_weights.py)."""
        if weights is not None:
            self.register_buffer("class_weights", weights.float(), persistent=False)

    def new_model(self) -> SegModel:
        return build_model(self.cfg["model"], self.info.num_classes)

    @abc.abstractmethod
    def training_step(self, batch: dict, step: int) -> StepOutput:
        """Loss of one optimisation step on `batch` (a dict keyed by the names in `inputs`)."""

    def after_step(self, step: int, max_steps: int) -> None:
        """Hook after each optimiser step (EMA updates)."""

    def segmenter(self) -> SegModel:
        """The model evaluated and exported."""
        return self.model  # type: ignore[attr-defined]

    def export_state(self) -> dict[str, torch.Tensor]:
        return self.segmenter().state_dict()


def build_method_class(cfg: dict) -> type[Method]:
    for mod in _METHOD_MODULES:
        importlib.import_module(mod)
    name = cfg.get("method", "supervised")
    if name not in METHODS:
        raise SegsslError(f"method={name}: unknown method (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]


def build_method(cfg: dict, info: ClassInfo) -> Method:
    return build_method_class(cfg)(cfg, info)
