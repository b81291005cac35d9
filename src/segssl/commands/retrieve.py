"""`segssl retrieve`: pixel-retrieval picture — for query pixels, the most similar pixels of other images.

    segssl retrieve --checkpoint CKPT --data PATH --queries 4 --out retrieval.png
    segssl retrieve --checkpoint CKPT --data PATH --query img_007:40,52 --query img_012:10,80 --out r.png

Writes the PNG (one row per query: query image with its pixel marked, then the top-k retrieved
images with their best pixel) and, next to it, a JSON file listing the same matches.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("retrieve", help="pixel-retrieval picture of a checkpoint's frozen features")
    from segssl.commands.common import add_config_flags
    from segssl.commands.probe import add_data_flags

    add_config_flags(p)
    p.add_argument("--checkpoint", required=True, help="segssl checkpoint (pretrained or trained), or 'random'")
    add_data_flags(p)
    p.add_argument("--split", default="train", help="split to query and search (default train)")
    p.add_argument("--queries", type=int, help="number of random query pixels (seeded; default 4)")
    p.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="STEM:X,Y",
        help="a query pixel: image stem and column,row (repeatable)",
    )
    p.add_argument("--top-k", type=int, default=5, help="retrieved images per query (default 5)")
    p.add_argument(
        "--pixels-per-image",
        type=int,
        default=1000,
        help="random pixels per image kept in the search bank; 0 = all (default 1000)",
    )
    p.add_argument(
        "--max-images",
        type=int,
        default=500,
        help="search at most this many images of the split (seeded subset; default 500)",
    )
    p.add_argument("--include-self", action="store_true", help="also search the query's own image")
    p.add_argument("--out", type=Path, default=Path("retrieval.png"), help="output PNG (default retrieval.png)")


def parse_query(text: str) -> tuple[str, int, int]:
    from segssl.errors import SegsslError

    stem, sep, xy = text.rpartition(":")
    try:
        x, y = (int(v) for v in xy.split(","))
    except ValueError:
        x = y = -1
        sep = ""
    if not sep or not stem or x < 0 or y < 0:
        raise SegsslError(f"--query {text}: expected STEM:X,Y with non-negative pixel column X and row Y")
    return stem, x, y


def run(args: argparse.Namespace) -> int:
    import torch

    from segssl.commands.common import console
    from segssl.commands.probe import probe_defaults, progress_fn, setup
    from segssl.errors import SegsslError
    from segssl.evaluation.probes import image_features
    from segssl.evaluation.retrieval import build_pixel_bank, draw_retrieval, normalized_image, retrieve

    if args.queries is not None and args.query:
        raise SegsslError("give either --queries N or --query STEM:X,Y, not both")
    if args.top_k < 1:
        raise SegsslError(f"--top-k {args.top_k}: must be at least 1")
    cfg, source, backbone, device = setup(args, probe_defaults())
    samples = source.samples(args.split)
    by_stem = {s.stem: s for s in samples}
    gen = torch.Generator().manual_seed(int(cfg["seed"]))

    # query pixels: (sample, x, y)
    queries = []
    if args.query:
        for text in args.query:
            stem, x, y = parse_query(text)
            if stem not in by_stem:
                raise SegsslError(f"--query {text}: no image '{stem}' in split {args.split}")
            h, w = source.read_image(by_stem[stem]).shape[:2]
            if x >= w or y >= h:
                raise SegsslError(f"--query {text}: pixel outside the {w}x{h} image")
            queries.append((by_stem[stem], x, y))
    else:
        n = 4 if args.queries is None else int(args.queries)
        if n < 1:
            raise SegsslError(f"--queries {n}: must be at least 1")
        for i in torch.randint(0, len(samples), (n,), generator=gen).tolist():
            h, w = source.read_image(samples[i]).shape[:2]
            y = int(torch.randint(0, h, (1,), generator=gen))
            x = int(torch.randint(0, w, (1,), generator=gen))
            queries.append((samples[i], x, y))

    # search bank: a seeded subset of the split's images, always holding the query images
    bank_samples = list(samples)
    if args.max_images and len(bank_samples) > args.max_images:
        keep = sorted(torch.randperm(len(bank_samples), generator=gen)[: args.max_images].tolist())
        chosen = {bank_samples[i].stem for i in keep} | {q[0].stem for q in queries}
        bank_samples = [s for s in samples if s.stem in chosen]
    if len(bank_samples) < 2 and not args.include_self:
        raise SegsslError(f"split {args.split}: retrieval needs at least 2 images (or --include-self)")
    bank = build_pixel_bank(
        backbone,
        source,
        bank_samples,
        pixels_per_image=int(args.pixels_per_image),
        seed=int(cfg["seed"]),
        device=device,
        progress=progress_fn(cfg),
    )
    position = {s.stem: i for i, s in enumerate(bank_samples)}

    qfeats = []
    for s, x, y in queries:
        f = image_features(backbone, normalized_image(source, s), device)
        qfeats.append(f[:, y, x].cpu())
    exclude = None if args.include_self else [position[s.stem] for s, _, _ in queries]
    hits = retrieve(torch.stack(qfeats), bank, k=int(args.top_k), exclude_image=exclude)
    results = [[(*bank.locate(j), sim) for j, sim in row] for row in hits]

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    draw_retrieval(out, source, queries, results)
    listing = [
        {
            "query": {"stem": s.stem, "x": x, "y": y},
            "matches": [{"stem": m.stem, "x": mx, "y": my, "cosine": round(sim, 6)} for m, mx, my, sim in row],
        }
        for (s, x, y), row in zip(queries, results, strict=True)
    ]
    out.with_suffix(".json").write_text(
        json.dumps({"checkpoint": str(args.checkpoint), "split": args.split, "queries": listing}, indent=1)
    )
    console.print(f"retrieval picture: {out} ({len(queries)} queries, top {args.top_k})")
    return 0
