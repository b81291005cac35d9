"""Dataset-level confusion matrix and scores against hand-computed examples."""

import pytest
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from segssl.evaluation.metrics import confusion_matrix, scores

IGN = 255


def test_confusion_matrix_counts_and_drops_ignore():
    gt = torch.tensor([[0, 0, 1], [1, IGN, 2]])
    pred = torch.tensor([[0, 1, 1], [1, 2, 0]])
    cm = confusion_matrix(pred, gt, 3, IGN)
    # rows = ground truth, cols = prediction; the ignored pixel (predicted 2) is not counted
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert cm.dtype == torch.int64


def test_scores_hand_computed():
    gt = torch.tensor([[0, 0, 1], [1, IGN, 2]])
    pred = torch.tensor([[0, 1, 1], [1, 2, 0]])
    res = scores(confusion_matrix(pred, gt, 3, IGN), ["a", "b", "c"])
    # IoU a = 1 / (2 + 2 - 1) = 1/3, b = 2 / (2 + 3 - 2) = 2/3, c = 0 / (1 + 0 - 0) = 0
    assert res["per_class_iou"] == {"a": round(100 / 3, 4), "b": round(200 / 3, 4), "c": 0.0}
    assert res["miou"] == pytest.approx(100 / 3, abs=1e-4)
    assert res["pixel_acc"] == pytest.approx(60.0)  # 3 of 5 valid pixels
    assert res["num_pixels"] == 5


def test_class_absent_from_prediction_and_truth_is_none_and_left_out_of_mean():
    gt = torch.tensor([[0, 0], [1, 1]])
    pred = torch.tensor([[0, 1], [1, 1]])
    res = scores(confusion_matrix(pred, gt, 4, IGN), ["a", "b", "c", "d"])
    # a: 1 / (2 + 1 - 1) = 1/2, b: 2 / (2 + 3 - 2) = 2/3; c and d never occur
    assert res["per_class_iou"]["c"] is None and res["per_class_iou"]["d"] is None
    assert res["miou"] == pytest.approx(100 * (0.5 + 2 / 3) / 2, abs=1e-4)
    assert res["pixel_acc"] == pytest.approx(75.0)


def test_class_only_predicted_counts_as_zero():
    gt = torch.tensor([0, 0, 0, 0])
    pred = torch.tensor([0, 0, 0, 2])
    res = scores(confusion_matrix(pred, gt, 3, IGN), ["a", "b", "c"])
    # c has an empty ground truth but a non-empty union: a false positive class scores 0, not None
    assert res["per_class_iou"] == {"a": 75.0, "b": None, "c": 0.0}
    assert res["miou"] == pytest.approx(37.5)


def test_dataset_level_differs_from_per_image_average():
    gts = [torch.tensor([0, 0, 0, 0]), torch.tensor([0, 1, 1, 1])]
    preds = [torch.tensor([0, 0, 0, 0]), torch.tensor([1, 1, 1, 1])]
    cm = sum(confusion_matrix(p, g, 2, IGN) for p, g in zip(preds, gts, strict=True))
    res = scores(cm, ["a", "b"])
    # dataset level: cm = [[4, 1], [0, 3]] -> IoU a = 4/5, b = 3/4 -> 77.5
    assert cm.tolist() == [[4, 1], [0, 3]]
    assert res["miou"] == pytest.approx(77.5)
    assert res["pixel_acc"] == pytest.approx(87.5)
    # per image: 100 (only a, perfect) and (0 + 3/4) / 2 = 37.5 -> mean 68.75, a different number
    per_image = [scores(confusion_matrix(p, g, 2, IGN), ["a", "b"])["miou"] for p, g in zip(preds, gts, strict=True)]
    assert per_image == [100.0, 37.5]
    assert sum(per_image) / 2 == pytest.approx(68.75)


def test_all_ignore_gives_zero_not_nan():
    res = scores(confusion_matrix(torch.tensor([0, 1]), torch.tensor([IGN, IGN]), 2, IGN), ["a", "b"])
    assert res == {"miou": 0.0, "pixel_acc": 0.0, "per_class_iou": {"a": None, "b": None}, "num_pixels": 0}


def test_ground_truth_outside_classes_raises():
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 3]), 3, IGN)


def test_matches_torchmetrics_used_for_validation():
    g = torch.Generator().manual_seed(3)
    gt = torch.randint(0, 5, (2, 17, 23), generator=g)
    gt[gt == 4] = IGN  # class 4 never appears in the truth, so ignore it there
    pred = torch.randint(0, 5, (2, 17, 23), generator=g)
    tm = MulticlassConfusionMatrix(5, ignore_index=IGN)
    tm.update(pred, gt)
    assert torch.equal(confusion_matrix(pred, gt, 5, IGN), tm.compute().long())
