"""Process-wide torch settings every segssl entry point applies before computing anything."""

from __future__ import annotations

import os


def configure_cpu() -> None:
    """Cap torch's threads at `SEGSSL_THREADS` and flush denormals to zero.

    The cap matters on shared machines: two runs each using every core oversubscribe them, and
    evaluation then ran about 8x slower than at one thread each. Trained weights and activations
    hold denormal floats, which slow CPU convolutions several-fold unless flushed.
    """
    import torch

    if os.environ.get("SEGSSL_THREADS"):
        torch.set_num_threads(int(os.environ["SEGSSL_THREADS"]))
    torch.set_flush_denormal(True)
