"""One self-contained HTML page (PNGs embedded as base64) that can be mailed or archived on its own."""

from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path

import yaml

from segssl import __version__
from segssl.reporting.plots import fraction_label
from segssl.reporting.runs import RunInfo

CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
 color:#1f2328;background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:32px 0 8px;padding-bottom:4px;
 border-bottom:1px solid #d0d7de}
.sub{color:#656d76;font-size:.9em;margin-bottom:16px}
table{border-collapse:collapse;font-size:.86em;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{padding:5px 9px;border-bottom:1px solid #e4e7eb;text-align:right;white-space:nowrap}
th{background:#f6f8fa;font-weight:600;position:sticky;top:0}
td.l,th.l{text-align:left}
tr:hover td{background:#f3f7ff}
td.best{font-weight:700;color:#0a5c2e}
td.na{color:#9aa1a9}
.scroll{overflow-x:auto}
.note{color:#656d76;font-size:.85em;max-width:900px;line-height:1.45}
img{max-width:100%;height:auto;border:1px solid #eaeef2;border-radius:4px}
.grid{display:flex;flex-wrap:wrap;gap:14px}
.grid figure{margin:0;flex:1 1 340px;max-width:420px}
figcaption{font-size:.82em;color:#444;margin-top:3px}
details{margin:6px 0}summary{cursor:pointer;font-size:.9em}
pre{background:#f6f8fa;padding:8px 10px;font-size:.78em;overflow-x:auto;border-radius:4px}
code{font-size:.9em}
.tag{display:inline-block;font-size:.75em;padding:1px 6px;border-radius:8px;background:#eef1f4;color:#57606a}
"""

MAX_CLASS_COLUMNS = 12  # more classes go to their own (transposed) table


def embed_png(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def _e(x) -> str:
    return html.escape(str(x))


def fmt_pct(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{float(v):.{digits}f}"


def fmt_time(seconds: float | None, exact: bool = True) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s >= 3600:
        txt = f"{s // 3600}h{s % 3600 // 60:02d}m"
    else:
        txt = f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
    return txt if exact else f"≈{txt}"


def fmt_labeled(r: RunInfo) -> str:
    if r.labeled_fraction is None:
        return "none" if r.kind == "pretrained" else "—"
    count = f" ({r.labeled_count})" if r.labeled_count is not None else ""
    return f"{fraction_label(r.labeled_fraction)}{count}"


def _num_cell(v: float | None, best: bool = False, digits: int = 2) -> str:
    if v is None:
        return '<td class="na">—</td>'
    cls = ' class="best"' if best else ""
    return f'<td{cls} title="{_e(v)}">{fmt_pct(v, digits)}</td>'


def results_table(runs: list[RunInfo], classes: list[str]) -> str:
    scored = [r.metrics["miou"] for r in runs if r.metrics]
    top = max(scored) if len(scored) > 1 else None
    best_scored = [r.metrics_best["miou"] for r in runs if r.metrics_best]
    top_best = max(best_scored) if len(best_scored) > 1 else None
    per_class = 0 < len(classes) <= MAX_CLASS_COLUMNS
    head = [
        '<th class="l">run</th>',
        '<th class="l">method</th>',
        '<th class="l">init</th>',
        "<th>labeled</th>",
        "<th>steps</th>",
        '<th title="test mIoU of the last checkpoint (headline)">mIoU last</th>',
        '<th title="test mIoU of the checkpoint with the best validation mIoU">mIoU best-val</th>',
        "<th>pixel acc</th>",
    ]
    head += [f"<th>{_e(c)}</th>" for c in classes] if per_class else []
    head += ["<th>train time</th>"]
    rows = []
    for r in runs:
        m, mb = r.metrics, r.metrics_best
        kind = "" if r.kind == "segmenter" else f' <span class="tag">{_e(r.kind)}</span>'
        cells = [
            f'<td class="l"><b>{_e(r.name)}</b>{kind}</td>',
            f'<td class="l">{_e(r.method)}</td>',
            f'<td class="l">{_e(r.init or "—")}</td>',
            f"<td>{_e(fmt_labeled(r))}</td>",
            f"<td>{'—' if r.steps is None else _e(r.steps)}</td>",
            _num_cell(m["miou"] if m else None, bool(m and top is not None and m["miou"] == top)),
            _num_cell(mb["miou"] if mb else None, bool(mb and top_best is not None and mb["miou"] == top_best)),
            _num_cell(m["pixel_acc"] if m else None),
        ]
        if per_class:
            cells += [_num_cell((m["per_class_iou"].get(c) if m else None), digits=1) for c in classes]
        cells.append(f"<td>{_e(fmt_time(r.train_time_s, r.train_time_exact))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(rows)}'
        "</tbody></table></div>"
    )


def per_class_table(runs: list[RunInfo], classes: list[str]) -> str:
    """Classes as rows, runs as columns: readable for any number of classes."""
    scored = [r for r in runs if r.metrics]
    head = '<th class="l">class</th>' + "".join(f"<th>{_e(r.name)}</th>" for r in scored)
    rows = []
    for c in classes:
        vals = [r.metrics["per_class_iou"].get(c) for r in scored]
        present = [v for v in vals if v is not None]
        top = max(present) if len(present) > 1 else None
        rows.append(
            f'<tr><td class="l">{_e(c)}</td>'
            + "".join(_num_cell(v, top is not None and v == top, 1) for v in vals)
            + "</tr>"
        )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def figure(path: Path, caption: str, alt: str) -> str:
    return (
        f'<figure><img src="{embed_png(path)}" alt="{_e(alt)}" loading="lazy">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def run_details(r: RunInfo) -> str:
    d = r.cfg.get("data") or {}
    items = [f"<b>{_e(r.name)}</b> — <code>{_e(r.path)}</code>", f"data <code>{_e(d.get('path'))}</code>"]
    if r.metrics:
        items.append(f"{_e(r.metrics.get('split'))} split, {_e(r.metrics.get('num_images'))} images")
    if r.labeled_count is not None and r.train_images:
        items.append(f"{r.labeled_count} of {r.train_images} train images labeled")
    notes = "".join(f"<li>{_e(n)}</li>" for n in r.notes)
    cfg = yaml.safe_dump(r.cfg, sort_keys=False)
    return (
        f"<details><summary>{' · '.join(items)}</summary>"
        f"{'<ul class=note>' + notes + '</ul>' if notes else ''}<pre>{_e(cfg)}</pre></details>"
    )


def render_report(runs: list[RunInfo], figures: dict, notes: list[str], title: str = "segssl report") -> str:
    """The page. `figures`: optional "label_efficiency", "per_class", "pictures" paths and a
    "confusion" list of (run name, path)."""
    classes: list[str] = []
    for r in runs:
        if r.metrics:
            classes = list(r.metrics.get("classes") or r.metrics["per_class_iou"])
            break
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [
        f"<h1>{_e(title)}</h1>",
        f'<div class="sub">{len(runs)} run{"s" if len(runs) != 1 else ""} · segssl {_e(__version__)} · {_e(now)}</div>',
        "<h2>Results</h2>",
        results_table(runs, classes),
        '<p class="note">Percentages from one dataset-level confusion matrix per run. '
        "mIoU is the mean IoU over the classes whose union (prediction ∪ ground truth) is non-empty "
        "on the split. "
        "<b>mIoU last</b> is the last checkpoint (the honest headline: no test-time model selection); "
        "<b>mIoU best-val</b> is the checkpoint with the best validation mIoU, evaluated on the same "
        "test split. Labeled: fraction (count) of the training images whose masks were used. "
        "Train time marked ≈ is estimated from file times.</p>",
    ]
    if len(classes) > MAX_CLASS_COLUMNS and any(r.metrics for r in runs):
        parts += ["<h2>Per-class IoU (%)</h2>", per_class_table(runs, classes)]
    if figures.get("label_efficiency"):
        parts += [
            "<h2>Label efficiency</h2>",
            figure(
                figures["label_efficiency"],
                "test mIoU (last checkpoint) against the labeled fraction",
                "label efficiency",
            ),
        ]
    if figures.get("per_class"):
        parts += [
            "<h2>Per-class IoU</h2>",
            figure(figures["per_class"], "IoU per class and run (test split, last checkpoint)", "per-class IoU"),
        ]
    if figures.get("pictures"):
        parts += [
            "<h2>Predictions</h2>",
            figure(figures["pictures"], figures.get("pictures_caption", ""), "picture grid"),
        ]
    if figures.get("confusion"):
        parts.append("<h2>Confusion matrices</h2>")
        parts.append(
            '<p class="note">Rows: ground truth; columns: prediction; each row sums to 100% '
            "(per-class recall on the diagonal). Last checkpoint, test split.</p>"
        )
        parts.append(
            '<div class="grid">'
            + "".join(figure(p, name, f"confusion matrix {name}") for name, p in figures["confusion"])
            + "</div>"
        )
    if notes:
        parts += ["<h2>Notes</h2>", "<ul class=note>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"]
    parts += ["<h2>Runs</h2>", *[run_details(r) for r in runs]]
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body><main>\n{body}\n</main></body></html>\n"
    )
