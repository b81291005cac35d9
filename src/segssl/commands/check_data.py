"""`segssl check-data PATH`: validate a dataset up front, one line per problem naming the file."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("check-data", help="validate a dataset (exit 1 listing every problem)")
    p.add_argument("path", help="dataset spec (folder, voc:PATH, camvid:PATH, ...)")
    p.add_argument("--split", action="append", help="only these splits (repeatable)")


def run(args: argparse.Namespace) -> int:
    from segssl.commands.common import console
    from segssl.data.registry import load_source
    from segssl.data.validate import validate_source
    from segssl.errors import DataError

    try:
        src = load_source(args.path)
    except DataError as e:
        print(e)
        return 1
    splits = args.split or list(src.splits)
    labeled = [s for s in splits if any(x.label is not None for x in src.splits.get(s, []))]
    problems = validate_source(src, splits, need_labels=labeled)
    if problems:
        for p in problems:
            print(p)
        return 1
    sizes = ", ".join(f"{s} {len(src.splits.get(s, []))}" for s in splits)
    console.print(
        f"{args.path}: OK — {src.info.num_classes} classes, {sizes} images"
        f"{' (labeled: ' + ', '.join(labeled) + ')' if labeled else ' (unlabeled)'}"
    )
    return 0
