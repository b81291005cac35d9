"""`configure_cpu`: the SEGSSL_THREADS cap that every command applies (evaluate ran oversubscribed without it)."""

import torch

from segssl.cli import main
from segssl.runtime import configure_cpu


def test_thread_cap_follows_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SEGSSL_THREADS", "2")
        configure_cpu()
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("SEGSSL_THREADS", "1")
        configure_cpu()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_every_command_applies_the_cap(monkeypatch, tmp_path):
    """Even a command that never trains (check-data) runs under the cap: it is applied in `main`."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("SEGSSL_THREADS", "1")
        main(["check-data", str(tmp_path)])  # an empty folder: an error, but after the cap
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
