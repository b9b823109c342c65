"""`bnnflow report`: a self-contained HTML page (images inlined) and PNGs of a sweep directory: accuracy against
cycles per frame and against LUTs with the Pareto fronts marked, one point's per-layer cycles (FINN's estimate next
to the measurement) and the training curves. The same sweep gives the same bytes."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from bnnflow.errors import BnnflowError
from bnnflow.fileio import ensure_writable_dir, write_bytes, write_text
from bnnflow.pareto import pareto_front
from bnnflow.sweep import RESULTS, SWEEP_META, load_points, point_row

REPORT_DIR = "report"
PAGE = "index.html"
TABLE_COLUMNS = ("label", "accuracy", "cycles", "luts", "ffs", "bram", "part", "differing_elements")


def _cycles(row: dict[str, Any]) -> float | None:
    """Cycles per frame: measured in the RTL where the point was simulated, else FINN's estimate."""
    return row["measured_ii"] if row["measured_ii"] is not None else row["estimated_ii"]


def _figure(width: float = 7.0, height: float = 4.5) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "bnnflow"
    return plt.subplots(figsize=(width, height), dpi=100)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version stamp: the same sweep, the same bytes
    plt.close(fig)
    return buf.getvalue()


def _series(row: dict[str, Any]) -> str:
    return f"{row['model']}-w{row['wbits']}a{row['abits']}"


def front_plot(rows: list[dict[str, Any]], cost: str, xlabel: str, title: str) -> tuple[bytes, list[dict[str, Any]]]:
    """Accuracy against a cost (log scale), a marker per model and bits (hollow: pruned), the front as a staircase."""
    costs = [float(r[cost]) for r in rows]
    accs = [float(r["accuracy"]) for r in rows]
    front = pareto_front(costs, accs)
    fig, ax = _figure()
    markers = "osD^vP*Xh<>"
    for n, series in enumerate(sorted({_series(r) for r in rows})):
        for pruned in (False, True):
            idx = [i for i, r in enumerate(rows) if _series(r) == series and (r["prune"] != "unpruned") == pruned]
            if not idx:
                continue
            ax.scatter([costs[i] for i in idx], [accs[i] for i in idx], marker=markers[n % len(markers)],
                       s=40, label=f"{series}{' pruned' if pruned else ''}", color=f"C{n}",
                       facecolors="none" if pruned else f"C{n}")  # fmt: skip
    fx, fy = [costs[i] for i in front], [accs[i] for i in front]
    ax.step(fx, fy, where="post", color="black", linewidth=1, label="Pareto front")
    ax.scatter(fx, fy, s=160, facecolors="none", edgecolors="black", linewidths=1)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig), [rows[i] for i in front]


def layers_plot(point: dict[str, Any]) -> bytes | None:
    """Grouped bars of each layer's cycles per frame: FINN's estimate and the RTL measured alone."""
    layers = (point["stages"].get("sim") or {}).get("layer_cycles") or []
    if not layers:
        return None
    fig, ax = _figure(max(6.0, 0.5 * len(layers) + 2), 4.5)
    xs = range(len(layers))
    ax.bar([x - 0.2 for x in xs], [layer["expected_cycles"] for layer in layers], 0.4, label="FINN estimate")
    ax.bar([x + 0.2 for x in xs], [layer["measured_cycles"] or 0 for layer in layers], 0.4, label="RTL, measured")
    ax.set_xticks(list(xs), [layer["name"] for layer in layers], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("cycles per frame")
    ax.set_title(f"per-layer cycles: {point['label']}")
    ax.legend(fontsize=8)
    return _png(fig)


def training_plot(sweep_dir: Path, points: list[dict[str, Any]]) -> bytes | None:
    """Test accuracy per epoch of every distinct training (solid) and pruning run (dashed: its retraining, after the
    training it started from), one colour per model and bits."""
    curves: dict[str, tuple[str, bool, list[dict[str, Any]]]] = {}
    for point in points:
        for stage in ("train", "prune"):
            record = point["stages"].get(stage)
            if record and record.get("metrics") and record["key"] not in curves:
                metrics = Path(sweep_dir) / record["metrics"]
                if metrics.is_file():
                    v = point["values"]
                    series = f"{v['model']}-w{v['wbits']}a{v['abits']}"
                    curves[record["key"]] = (series, stage == "prune", json.loads(metrics.read_text())["epochs"])
    if not curves:
        return None
    fig, ax = _figure()
    colours = {series: f"C{n % 10}" for n, series in enumerate(sorted({c[0] for c in curves.values()}))}
    labelled: set[str] = set()
    for _key, (series, pruned, epochs) in sorted(curves.items(), key=lambda kv: (kv[1][0], kv[1][1], kv[0])):
        label = None if series in labelled else series
        labelled.add(series)
        ax.plot([e["epoch"] for e in epochs], [e["test_acc"] for e in epochs], linestyle="--" if pruned else "-",
                color=colours[series], label=label, linewidth=1)  # fmt: skip
    if any(pruned for _s, pruned, _e in curves.values()):
        ax.plot([], [], linestyle="--", color="grey", label="pruning and retraining")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("training curves")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def _pick(points: list[dict[str, Any]], front: list[dict[str, Any]], wanted: str | None) -> dict[str, Any] | None:
    if wanted is not None:
        for point in points:
            if wanted in (point["id"], point["label"]):
                return point
        raise BnnflowError(f"no point '{wanted}' in this sweep; give an id or label from {RESULTS}")
    ids = {row["point"] for row in front}
    candidates = [p for p in points if p["id"] in ids and (p["stages"].get("sim") or {}).get("layer_cycles")]
    return max(candidates, key=lambda p: point_row(p)["accuracy"], default=None)


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in columns) + "</tr>\n" for row in rows
    )
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}" if not value.is_integer() else f"{value:.0f}"
    return str(value)


def _img(name: str, data: bytes, alt: str) -> str:
    src = f"data:image/png;base64,{base64.b64encode(data).decode()}"
    caption = f"{html.escape(alt)} ({html.escape(name)})"
    return (f'<figure><img src="{src}" alt="{html.escape(alt)}" data-file="{html.escape(name)}">'
            f"<figcaption>{caption}</figcaption></figure>")  # fmt: skip


def write_report(sweep_dir: Path, out_dir: Path | None = None, point: str | None = None) -> Path:
    """Write REPORT_DIR/index.html and its PNGs for a sweep directory; returns the page."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / SWEEP_META).is_file():
        raise BnnflowError(f"{sweep_dir} is not a sweep directory (no {SWEEP_META}); give the --out of `bnnflow sweep`")
    points = load_points(sweep_dir)
    if not points:
        raise BnnflowError(f"no finished points in {sweep_dir}; run `bnnflow sweep` first")
    meta = json.loads((sweep_dir / SWEEP_META).read_text())
    out = ensure_writable_dir(out_dir or sweep_dir / REPORT_DIR, "report directory")
    rows = [{**point_row(p), "cycles": None} for p in points]
    for row in rows:
        row["cycles"] = _cycles(row)
    ok = [r for r in rows if r["status"] == "ok" and r["accuracy"] is not None and r["cycles"] is not None]
    figures: list[str] = []
    sections: list[str] = []
    front: list[dict[str, Any]] = []
    if ok:
        png, front = front_plot(ok, "cycles", "cycles per frame (RTL measured; FINN estimate where not simulated)",
                                "accuracy against cycles per frame")  # fmt: skip
        figures.append(_save(out, "accuracy_vs_cycles.png", png, "accuracy against cycles per frame"))
        sections.append("<h2>Pareto front: accuracy against cycles per frame</h2>\n" +
                        _table(front, TABLE_COLUMNS))  # fmt: skip
        for part in sorted({r["part"] for r in ok if r["luts"] is not None}):
            on_part = [r for r in ok if r["part"] == part and r["luts"] is not None]
            png, lut_front = front_plot(on_part, "luts", f"LUTs on {part} (Yosys)", f"accuracy against LUTs: {part}")
            name = f"accuracy_vs_luts_{_slug(part)}.png"
            figures.append(_save(out, name, png, f"accuracy against LUTs on {part}"))
            sections.append(f"<h2>Pareto front: accuracy against LUTs on {html.escape(part)}</h2>\n" +
                            _table(lut_front, TABLE_COLUMNS))  # fmt: skip
    chosen = _pick(points, front, point)
    if chosen is not None:
        png_layers = layers_plot(chosen)
        if png_layers is not None:
            figures.append(_save(out, "layer_cycles.png", png_layers, f"per-layer cycles of {chosen['label']}"))
    curves = training_plot(sweep_dir, points)
    if curves is not None:
        figures.append(_save(out, "training_curves.png", curves, "training curves"))
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        sections.append("<h2>Failed points</h2>\n" + _table(failed, ("label", "error_stage", "error")))
    all_columns = ("point", "label", "status", "accuracy", "estimated_ii", "measured_ii", "measured_latency",
                   "differing_elements", "luts", "ffs", "bram", "part", "train_s", "build_s", "sim_s",
                   "synth_s")  # fmt: skip
    sections.append("<h2>All points</h2>\n" + _table(rows, all_columns))
    title = f"bnnflow sweep: {meta['spec']['name']}"
    page = "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:12px}"
        " td,th{border:1px solid #ccc;padding:2px 6px;text-align:right} figure{display:inline-block;margin:1em}"
        " img{max-width:720px}</style>", "</head><body>", f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(rows)} points, {len(ok)} finished with results, {len(failed)} failed. Results: {RESULTS}.</p>",
        *figures, *sections, "</body></html>", "",
    ])  # fmt: skip
    write_text(out / PAGE, page)
    return out / PAGE


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _save(out: Path, name: str, data: bytes, alt: str) -> str:
    write_bytes(out / name, data)
    return _img(name, data, alt)
