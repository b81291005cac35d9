"""Resolve a `--data` spec (a folder, `voc:PATH`, `cityscapes:PATH`, ..., `generated[:N]`) to a DataSource."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from segssl.data.source import DataSource
from segssl.errors import DataError

READERS: dict[str, Callable[[Path], DataSource]] = {}


def register_reader(prefix: str):
    def deco(fn: Callable[[Path], DataSource]):
        READERS[prefix] = fn
        return fn

    return deco


def load_source(spec: str | Path, *, generated_seed: int = 0) -> DataSource:
    """`spec` forms: PATH (folder format), PREFIX:PATH, `generated` or `generated:N` (N train images)."""
    from segssl.data import formats  # noqa: F401  (registers the layout readers)
    from segssl.data.folder import load_folder
    from segssl.data.generated import generated_source

    spec = str(spec)
    if spec == "generated" or spec.startswith("generated:"):
        arg = spec.split(":", 1)[1] if ":" in spec else None
        if arg is not None and not arg.isdigit():
            raise DataError(f"{spec}: expected generated:N with N a number of train images")
        n = int(arg) if arg is not None else None
        return generated_source(num_train=n, seed=generated_seed)
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in READERS:
        path = Path(rest).expanduser()
        if not path.exists():
            raise DataError(f"{path}: dataset folder does not exist")
        return READERS[prefix](path)
    if sep and len(prefix) > 1 and not Path(spec).exists():
        known = ", ".join(sorted(READERS) + ["generated"])
        raise DataError(f"{spec}: unknown dataset kind '{prefix}' (known: {known})")
    return load_folder(Path(spec).expanduser())
