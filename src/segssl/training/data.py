"""Build the datasets and loaders a method asks for (labeled, unlabeled, views, val)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset

from segssl.data.boxes import boxes_map_from_mask
from segssl.data.dataset import DecodedCache, SegmentationDataset, TwoViewDataset
from segssl.data.source import DataSource, Sample
from segssl.data.splits import split_labeled, write_split_files
from segssl.data.transforms import eval_transform, train_transform
from segssl.data.views import TwoViews
from segssl.errors import DataError
from segssl.training.samplers import EpochSampler, ShardSampler


@dataclass
class RunData:
    """The concrete images of one run: who is labeled, who is not, what is validated on."""

    source: DataSource
    labeled: list[Sample] = field(default_factory=list)
    unlabeled: list[tuple[str, Sample]] = field(default_factory=list)  # (split, sample)
    val: list[Sample] = field(default_factory=list)


def plan_data(source: DataSource, cfg: dict, inputs: tuple[str, ...], run_dir: Path | None) -> RunData:
    """Split the train images into labeled/unlabeled by `data.labeled`; write the split files."""
    d = cfg["data"]
    train = source.samples("train")
    by_stem = {s.stem: s for s in train}
    rd = RunData(source)
    spec = d.get("labeled", "all")
    # a pretraining method reads labels only for its online probe, and only when --labeled is given
    wants_labels = "labeled" in inputs or ("probe" in inputs and spec not in (None, "none", "None"))
    if wants_labels:
        if not source.has_labels("train"):
            raise DataError(f"{source.root or source.name}/train: this method needs labels, but the split has none")
        if spec in (None, "none", "all", "1/1", "1.0", 1.0):
            labeled, unlabeled = sorted(by_stem), []
        else:
            labeled, unlabeled = split_labeled(sorted(by_stem), spec, seed=int(cfg["seed"]))
            if run_dir is not None:
                write_split_files(run_dir, labeled, unlabeled)
        rd.labeled = [by_stem[s] for s in labeled]
        rd.unlabeled = [("train", by_stem[s]) for s in unlabeled]
    if "labeled" not in inputs:  # self-supervised: every train image is unlabeled data
        rd.unlabeled = [("train", s) for s in train]
    if d.get("unlabeled_extra"):
        for split in d["unlabeled_extra"]:
            rd.unlabeled += [(split, s) for s in source.splits.get(split, [])]
    val_split = d.get("val_split")
    needs_val = "labeled" in inputs or bool(rd.labeled)
    if needs_val and val_split and source.has_labels(val_split):
        rd.val = source.samples(val_split)
    return rd


class _Unlabeled(Dataset):
    """Images from several splits without labels, under the training transform.

    `valid` marks real image pixels (False where the crop was padded), so unlabeled losses skip
    padding; `boxes` (for box-supervised methods) derives a box-prior map from the hidden mask.
    """

    def __init__(
        self,
        source: DataSource,
        items: list[tuple[str, Sample]],
        transform,
        cache: DecodedCache,
        boxes: dict | None = None,
    ):
        self.parts = {}
        for split, s in items:
            self.parts.setdefault(split, []).append(s)
        self.boxes = boxes
        self.ignore = source.info.ignore_index
        self.datasets = [
            SegmentationDataset(source, sp, ss, transform, labels=boxes is not None, cache=cache, valid_mask=True)
            for sp, ss in self.parts.items()
        ]
        self.index = [(k, i) for k, ds in enumerate(self.datasets) for i in range(len(ds))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        k, j = self.index[i]
        out = self.datasets[k][j]
        if self.boxes is not None:
            out["boxes_map"] = boxes_map_from_mask(out.pop("label"), **self.boxes)
        out["index"] = i
        return out


class SegDataModule(pl.LightningDataModule):
    def __init__(self, rd: RunData, cfg: dict, inputs: tuple[str, ...], weak_boxes: dict | None = None):
        super().__init__()
        self.rd, self.cfg, self.inputs = rd, cfg, inputs
        d = cfg["data"]
        self.cache = DecodedCache(rd.source, int(float(d.get("cache_gb", 6)) * 2**30))
        ign = rd.source.info.ignore_index
        tf = train_transform(
            d["crop"],
            ignore_index=ign,
            base_size=d.get("base_size"),
            scale=d["scale"],
            color_jitter=float(d.get("color_jitter", 0.2)),
        )
        self.datasets: dict[str, Dataset] = {}
        if "labeled" in inputs:
            self.datasets["labeled"] = SegmentationDataset(rd.source, "train", rd.labeled, tf, cache=self.cache)
        if "unlabeled" in inputs:
            if not rd.unlabeled:
                raise DataError("this method needs unlabeled images, but --labeled leaves none (use a fraction < 1)")
            self.datasets["unlabeled"] = _Unlabeled(rd.source, rd.unlabeled, tf, self.cache, boxes=weak_boxes)
        if "views" in inputs:
            if not rd.unlabeled:
                raise DataError("this method needs unlabeled images, but --labeled leaves none (use a fraction < 1)")
            v = cfg.get("views") or {}
            views = TwoViews(
                size=d["crop"],
                scale=v.get("scale", (0.3, 1.0)),
                color_jitter=v.get("color_jitter", 0.4),
                min_overlap=v.get("min_overlap", 0.3),
            )
            self.datasets["views"] = TwoViewDataset(rd.source, rd.unlabeled, views, cache=self.cache)
        if "probe" in inputs and rd.labeled:
            self.datasets["probe"] = SegmentationDataset(rd.source, "train", rd.labeled, tf, cache=self.cache)
        self.val_ds = (
            SegmentationDataset(rd.source, cfg["data"]["val_split"], rd.val, eval_transform(), cache=self.cache)
            if rd.val
            else None
        )

    def _world(self) -> tuple[int, int]:
        t = self.trainer
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def _epoch_of(self, steps: int):
        """The starting epoch as the trainer's global step says (exact after a resume), or None."""
        t = self.trainer
        return (lambda: t.global_step // steps) if t is not None else None

    def _loader(self, ds: Dataset, sampler, batch_size: int, drop_last: bool) -> DataLoader:
        nw = int(self.cfg["data"].get("num_workers", 0))
        return DataLoader(
            ds,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=nw,
            drop_last=drop_last,
            persistent_workers=nw > 0,
            pin_memory=False,
        )

    def train_dataloader(self):
        rank, world = self._world()
        bs = int(self.cfg["data"]["batch_size"])
        steps = int(self.cfg["train"].get("epoch_steps", 100))
        seed = int(self.cfg["seed"])
        loaders = {}
        for k, (name, ds) in enumerate(self.datasets.items()):
            b = int(self.cfg["data"].get(f"{name}_batch_size") or bs)
            sampler = EpochSampler(
                len(ds), steps * b, seed=seed + 7919 * k, rank=rank, world=world, epoch_of=self._epoch_of(steps)
            )
            loaders[name] = self._loader(ds, sampler, b, drop_last=True)
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self):
        if self.val_ds is None:
            return []
        rank, world = self._world()
        return self._loader(
            self.val_ds,
            ShardSampler(len(self.val_ds), rank, world),
            int(self.cfg["eval"].get("batch_size", 4)),
            drop_last=False,
        )
