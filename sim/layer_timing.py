"""Each layer's cycles per frame measured alone: every layer of the design instantiated side by side with its
input always offered and its output always taken, so that each runs at its own rate (in the whole chain every
layer runs at the slowest one's). This is what FINN's per-layer cycle estimate predicts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from bnnflow.errors import BnnflowError
from bnnflow.fileio import ensure_writable_dir, write_text
from bnnflow.hw.generate import TOP, Design
from bnnflow.render import render
from bnnflow.sim.verilator import build_testbench, find_verilator

PROBE = "bnn_probe"
FRAMES = 6  # frame ends recorded per layer; the first is the pipeline filling, the others the steady state


def steady_interval(ends: list[int]) -> float | None:
    """Mean cycles between frame ends after the first frame."""
    if len(ends) < 3:
        return None
    return (ends[-1] - ends[1]) / (len(ends) - 2)


def layer_timing(design: Design, work_dir: Path, cache: Path | None = None) -> list[dict[str, Any]]:
    """Per layer: FINN's estimated cycles per frame and the cycles per frame measured alone in Verilator."""
    out = ensure_writable_dir(Path(work_dir), "layer timing directory").resolve()
    probe = out / f"{PROBE}.sv"
    source = str(design.manifest.get("source", ""))
    write_text(probe, render("bnnflow.sim", "probe.sv.j2", top=PROBE, source=source, layers=design.layers))
    tb = out / "probe_tb.cpp"
    write_text(tb, render("bnnflow.sim", "probe_tb.cpp.j2", top=PROBE, layers=design.layers))
    sources = [src for src in design.sources if src.stem != TOP] + [probe]
    exe = build_testbench(find_verilator(), sources, tb, out / "obj_dir", PROBE, cache=cache)
    max_cycles = 1000 + 4 * (FRAMES + 1) * max(layer.expected_cycles for layer in design.layers)
    result = out / "layers.json"
    proc = subprocess.run([str(exe), str(result), str(FRAMES), str(max_cycles)], cwd=design.rtl_dir,
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode != 0 or not result.is_file():
        raise BnnflowError(f"the per-layer timing run failed (exit {proc.returncode}): "
                           f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")  # fmt: skip
    ends = json.loads(result.read_text())["frame_ends"]
    return [
        {
            "name": layer.name,
            "module": layer.module,
            "expected_cycles": layer.expected_cycles,
            "measured_cycles": steady_interval(frame_ends),
        }
        for layer, frame_ends in zip(design.layers, ends, strict=True)
    ]
