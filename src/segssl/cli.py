"""`segssl` command line: `segssl <command> [--config FILE.yaml] [--set key=value ...] [flags]`."""

from __future__ import annotations

import argparse
import importlib
import sys

from segssl import __version__
from segssl.commands import COMMANDS


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="segssl", description="Label-efficient semantic segmentation.")
    parser.add_argument("--version", action="version", version=f"segssl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    modules = {}
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"segssl.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"segssl.commands.{name}":
                continue  # command not built yet
            raise
        mod.add_parser(sub)
        modules[name.replace("_", "-")] = mod
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    from segssl.errors import SegsslError

    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        from segssl.runtime import configure_cpu

        configure_cpu()  # every command: evaluate, predict and retrieve ran oversubscribed without the cap
        return int(modules[args.command].run(args) or 0)
    except SegsslError as e:
        print(f"segssl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"segssl {args.command}: interrupted (checkpoints written so far are intact)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
