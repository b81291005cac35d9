"""User mistakes on the command line: exit code 2 and one line naming the culprit, never a traceback."""

import pytest

from conftest import tiny_overrides
from segssl.cli import main


def _sets(**extra) -> list[str]:
    return sum((["--set", o] for o in tiny_overrides(**extra)), [])


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_unknown_set_key(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), *_sets(), "--set", "train.max_stepz=3"]) == 2
    line = _one_line_error(capsys, "unknown config key 'train.max_stepz'")
    assert line.startswith("segssl train: error:")
    assert not (tmp_path / "r").exists()


def test_missing_config_file(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r")]) == 2
    _one_line_error(capsys, "none.yaml", "config file does not exist")


def test_invalid_yaml_config(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("train:\n  lr: [0.1\n")
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")]) == 2
    _one_line_error(capsys, "c.yaml", "invalid YAML at line")


def test_unknown_method(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), *_sets(), "--set", "method=magic"]) == 2
    _one_line_error(capsys, "method=magic: unknown method", "supervised")


def test_bad_labeled_spec(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--labeled", "two", *_sets()]) == 2
    _one_line_error(capsys, "--labeled two")
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_unknown_data_kind(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--data", "nosuch:/x", *_sets()]) == 2
    _one_line_error(capsys, "unknown dataset kind 'nosuch'")


def test_resume_without_a_run(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--resume", *_sets()]) == 2
    _one_line_error(capsys, "last.ckpt", "nothing to resume")


def test_resume_from_a_corrupt_checkpoint(tmp_path, capsys):
    (tmp_path / "r" / "checkpoints").mkdir(parents=True)
    (tmp_path / "r" / "checkpoints" / "last.ckpt").write_bytes(b"half-written")
    assert main(["train", "--out", str(tmp_path / "r"), "--resume", *_sets()]) == 2
    _one_line_error(capsys, "last.ckpt: not a loadable checkpoint")


def test_evaluate_errors(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "x.ckpt")]) == 2
    _one_line_error(capsys, "x.ckpt: checkpoint does not exist")
    (tmp_path / "g.ckpt").write_bytes(b"garbage")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "g.ckpt")]) == 2
    _one_line_error(capsys, "g.ckpt: not a loadable checkpoint")
    assert main(["evaluate", "--predictions", str(tmp_path)]) == 2
    _one_line_error(capsys, "--predictions needs --data")
    assert main(["evaluate", "--predictions", str(tmp_path / "nope"), "--data", "generated:1"]) == 2
    _one_line_error(capsys, "predictions folder does not exist")


def test_predict_errors(tmp_path, capsys):
    (tmp_path / "g.ckpt").write_bytes(b"garbage")
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(tmp_path / "g.ckpt"),
                "--images",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    _one_line_error(capsys, "g.ckpt: not a loadable checkpoint")
    assert not (tmp_path / "o").exists()


def test_check_data_on_a_missing_folder(tmp_path, capsys):
    assert main(["check-data", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().out.strip() == f"{tmp_path / 'nope'}: dataset folder does not exist"


def test_no_command_and_argparse_errors(capsys):
    assert main([]) == 2
    with pytest.raises(SystemExit) as e:
        main(["evaluate"])  # --checkpoint or --predictions is required
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2
