"""Labeled/unlabeled splits: deterministic, stable under additions, reusable through split files."""

import pytest

from segssl.data.splits import parse_fraction, read_split_file, split_labeled, write_split_files
from segssl.errors import SegsslError

STEMS = [f"img_{i:03d}" for i in range(64)]


def test_same_seed_and_fraction_give_the_same_files():
    a = split_labeled(STEMS, "1/8", seed=3)
    b = split_labeled(list(reversed(STEMS)), "1/8", seed=3)  # order of the listing does not matter
    assert a == b
    labeled, unlabeled = a
    assert len(labeled) == 8 and len(unlabeled) == 56
    assert labeled == sorted(labeled) and unlabeled == sorted(unlabeled)
    assert set(labeled) | set(unlabeled) == set(STEMS) and not set(labeled) & set(unlabeled)


def test_different_seed_gives_different_files():
    assert split_labeled(STEMS, "1/8", seed=0)[0] != split_labeled(STEMS, "1/8", seed=1)[0]


@pytest.mark.parametrize(
    ("spec", "n"),
    [("1/8", 8), ("0.125", 8), (0.125, 8), ("5", 5), (5, 5), ("1/3", 21), ("1.0", 64), ("64", 64)],
)
def test_spec_forms(spec, n):
    assert parse_fraction(spec, 64) == n
    assert len(split_labeled(STEMS, spec, seed=0)[0]) == n


def test_fraction_and_decimal_agree():
    eighth = split_labeled(STEMS, "1/8", seed=7)
    assert eighth == split_labeled(STEMS, "0.125", seed=7) == split_labeled(STEMS, 8, seed=7)


@pytest.mark.parametrize("spec", ["abc", "0", "-3", "65", "1/0", "0.0", "1.5", "3/2", ""])
def test_bad_specs(spec):
    with pytest.raises(SegsslError, match="--labeled"):
        split_labeled(STEMS, spec, seed=0)


def test_smaller_count_is_a_subset_of_larger():
    # hash ranks order the images once per seed: every labeled set is a prefix of that order
    prev: set[str] = set()
    for n in (1, 2, 5, 8, 16, 40):
        cur = set(split_labeled(STEMS, n, seed=2)[0])
        assert prev <= cur and len(cur) == n
        prev = cur


def test_adding_images_keeps_the_relative_order_of_old_ones():
    old = STEMS[:40]
    new = STEMS  # 24 images added to the folder
    for n in (4, 10, 20):
        chosen_new = set(split_labeled(new, n, seed=5)[0])
        old_part = chosen_new & set(old)
        # the old images labeled after the addition are exactly the top-k of the old ranking
        assert old_part, "seed 5 chooses some old images at these counts"
        assert old_part == set(split_labeled(old, len(old_part), seed=5)[0])
        # so no old image that was unlabeled at count n becomes labeled at the same count
        assert old_part <= set(split_labeled(old, n, seed=5)[0])


def test_split_file_input(tmp_path):
    f = tmp_path / "my.txt"
    f.write_text("img_010\n\n  img_003 \nimg_050\n")
    labeled, unlabeled = split_labeled(STEMS, str(f), seed=123)
    assert labeled == ["img_003", "img_010", "img_050"]
    assert len(unlabeled) == 61 and "img_003" not in unlabeled


def test_split_file_errors(tmp_path):
    with pytest.raises(SegsslError, match="split file does not exist"):
        split_labeled(STEMS, str(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(SegsslError, match="split file is empty"):
        split_labeled(STEMS, str(tmp_path / "empty.txt"))
    (tmp_path / "bad.txt").write_text("img_001\nnot_there\n")
    with pytest.raises(SegsslError, match="1 stems not in the training split, e.g. 'not_there'"):
        split_labeled(STEMS, str(tmp_path / "bad.txt"))


def test_write_split_files_sorted_one_stem_per_line(tmp_path):
    write_split_files(tmp_path, ["b", "c", "a"], ["z", "x"])
    assert (tmp_path / "splits" / "labeled.txt").read_text() == "a\nb\nc\n"
    assert (tmp_path / "splits" / "unlabeled.txt").read_text() == "x\nz\n"
    assert read_split_file(tmp_path / "splits" / "labeled.txt") == ["a", "b", "c"]
    # a written split file round-trips as --labeled FILE
    labeled, _ = split_labeled(STEMS, "1/4", seed=9)
    write_split_files(tmp_path / "r", labeled, [])
    assert split_labeled(STEMS, str(tmp_path / "r" / "splits" / "labeled.txt"))[0] == labeled


def test_tiny_fraction_rounds_up_to_one_image():
    from segssl.data.splits import parse_fraction

    assert parse_fraction("1/200", 64) == 1
    assert parse_fraction("0.001", 64) == 1
