"""Cycle-accurate simulation of a generated accelerator in Verilator, compared element by element with FINN's
python execution of the same graph, and, with the host part of the network around it, with PyTorch's golden
outputs; measures initiation interval and latency."""

from __future__ import annotations

import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bnnflow.artifacts import Comparison, build_golden_path, compare_outputs, load_golden, load_onnx
from bnnflow.dataflow.batched import execute_accelerator_batched
from bnnflow.dataflow.host import HostGraphs
from bnnflow.errors import BnnflowError
from bnnflow.fileio import ensure_writable_dir, write_json, write_text
from bnnflow.hw.generate import TOP, Design, load_build_design
from bnnflow.hw.layers import StreamFormat, decode, unpack_words
from bnnflow.hw.streams import input_words
from bnnflow.render import render
from bnnflow.sim.cppsim import CppsimReport, run_cppsim
from bnnflow.sim.layer_timing import layer_timing
from bnnflow.sim.verilator import build_testbench, find_verilator


@dataclass
class SimConfig:
    """One simulation of a built design."""

    build_dir: Path = Path("build/dataflow")
    """A `bnnflow build` directory (its intermediate/estimate.onnx is simulated)."""
    golden: Path | None = None
    """golden.npz with inputs (as the built graph consumes them) and PyTorch outputs; default: the build's."""
    samples: int | None = None
    """Simulate only the first N golden inputs."""
    backpressure: bool = False
    """Random input gaps and output stalls (seeded); cycle figures are then not steady-state."""
    seed: int = 0
    """Seed of the back-pressure pattern."""
    trace: bool = False
    """Write an FST waveform to sim/trace.fst."""
    sim_dir: Path | None = None
    """Where the Verilator build and report.json go; default BUILD_DIR/sim (the RTL is BUILD_DIR/rtl's)."""
    cppsim: bool = True
    """Also run FINN's C++ simulation of the HLS layers, where finn-hlslib is present (else say why not)."""
    cppsim_samples: int = 4
    """Frames each HLS layer runs in cppsim (each frame is one run of each layer's program)."""
    layer_timing: bool = False
    """Also measure each layer's cycles per frame alone (sim/layer_timing.py), next to FINN's estimate."""
    cache_dir: Path | None = None
    """Compiled Verilator models by the hash of their RTL and test bench (`bnnflow sim` uses ~/.cache/bnnflow);
    a design simulated before, in any build directory, is not compiled again."""


@dataclass
class SimReport:
    frames: int
    mismatches_vs_finn: int
    vs_pytorch: Comparison | None  # host part + RTL against the golden outputs
    measured_ii: float | None
    latency_cycles: int
    expected_latency: int
    expected_ii: int
    slowest_layer: str
    total_cycles: int
    wall_s: float
    backpressure: bool
    outputs: np.ndarray = field(repr=False)
    cppsim: CppsimReport = field(default_factory=lambda: CppsimReport(ran=False, reason="skipped: not asked for"))
    sim_dir: Path | None = None
    rtl_hash: str = ""
    layer_cycles: list[dict[str, Any]] = field(default_factory=list)
    """With SimConfig.layer_timing: per layer, FINN's estimated cycles per frame and those measured alone."""
    reference: str = "per frame"
    """How FINN's execution of the reference was run: "batched" or "per frame: REASON" (dataflow/batched.py)."""

    @property
    def rtl_ok(self) -> bool:
        return self.mismatches_vs_finn == 0 and (self.vs_pytorch is None or self.vs_pytorch.ok)

    @property
    def ok(self) -> bool:
        return self.rtl_ok and self.cppsim.ok

    def failure(self) -> str | None:
        """One line on what went wrong, or None."""
        report = self.sim_dir / "report.json" if self.sim_dir else "report.json"
        if not self.rtl_ok:
            return f"the RTL disagrees with the reference; see {report}"
        if self.cppsim.error:
            return self.cppsim.error
        if not self.cppsim.ok:
            return f"FINN's cppsim disagrees with FINN's python execution; see {report}"
        return None

    def lines(self) -> list[str]:
        ii = "n/a (fewer than 3 frames)" if self.measured_ii is None else f"{self.measured_ii:.1f}"
        vs = self.vs_pytorch
        out = [
            f"rtl        {self.frames} frames in Verilator: {self.mismatches_vs_finn} of {self.outputs.size} output "
            f"elements differ from FINN's execution ({self.reference})",
            f"rtl hash   {self.rtl_hash}",
            f"pytorch    host part + RTL vs golden: {vs.summary() if vs is not None else 'no golden outputs'}",
            f"cycles     II measured {ii} vs FINN estimate {self.expected_ii} ({self.slowest_layer}); "
            f"latency {self.latency_cycles} cycles vs {self.expected_latency} estimated"
            f"{' (with back-pressure)' if self.backpressure else ''}",
            f"cppsim     {self.cppsim.line()}",
        ]
        for layer in self.layer_cycles:
            got = "n/a" if layer["measured_cycles"] is None else f"{layer['measured_cycles']:g}"
            out.append(
                f"layer      {layer['name']:24s} {got:>8s} cycles/frame alone, FINN estimate {layer['expected_cycles']}"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        ii_err = None if self.measured_ii is None else (self.measured_ii - self.expected_ii) / self.expected_ii
        return {
            "frames": self.frames,
            "mismatches_vs_finn": self.mismatches_vs_finn,
            "output_elements": int(self.outputs.size),
            "vs_pytorch": self.vs_pytorch.to_dict() if self.vs_pytorch is not None else None,
            "measured_ii_cycles": self.measured_ii,
            "expected_ii_cycles": self.expected_ii,
            "ii_relative_error": ii_err,
            "slowest_layer": self.slowest_layer,
            "reference": self.reference,
            "latency_cycles": self.latency_cycles,
            "expected_latency_cycles": self.expected_latency,
            "total_cycles": self.total_cycles,
            "backpressure": self.backpressure,
            "cppsim": self.cppsim.to_dict(),
            "rtl_hash": self.rtl_hash,
            "layer_cycles": self.layer_cycles,
        }


def run_design(
    design: Design,
    words: list[str],
    fmt_in: StreamFormat,
    fmt_out: StreamFormat,
    cfg: SimConfig,
    sim_dir: Path,
) -> tuple[np.ndarray, dict[str, Any], float]:
    verilator = find_verilator()
    tb = sim_dir / "tb.cpp"
    width = fmt_out.width
    write_text(tb, render("bnnflow.sim", "tb.cpp.j2", top=TOP, trace=cfg.trace, out_digits=max(1, (width + 3) // 4),
                          layers=[layer.name for layer in design.layers]))  # fmt: skip
    exe = build_testbench(verilator, design.sources, tb, sim_dir / "obj_dir", TOP, cfg.trace, cfg.cache_dir)
    write_text(sim_dir / "input.hex", "\n".join(words) + "\n")
    frames = len(words) // fmt_in.words
    max_cycles = 1000 + 50 * (frames + 2) * max(layer.expected_cycles for layer in design.layers)
    files = [sim_dir / "input.hex", sim_dir / "output.hex", sim_dir / "cycles.json"]
    counts = [fmt_in.words, fmt_out.words, int(cfg.backpressure), cfg.seed, max_cycles]
    args = [str(exe), *map(str, files), *map(str, counts)]
    if cfg.trace:
        args.append(str(sim_dir / "trace.fst"))
    began = time.perf_counter()
    proc = subprocess.run(args, cwd=design.rtl_dir, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    import json

    cycles = json.loads((sim_dir / "cycles.json").read_text())
    if proc.returncode != 0:
        raise BnnflowError(
            f"simulation stopped after {cycles['cycles']} cycles with {cycles['received_words']} of "
            f"{frames * fmt_out.words} output words (exit {proc.returncode}); the design deadlocked or is too slow"
        )
    out_words = (sim_dir / "output.hex").read_text().split()
    codes = unpack_words(out_words, fmt_out.bits, fmt_out.elems)
    values = decode(codes, fmt_out.bits, fmt_out.signed, fmt_out.bipolar).reshape(frames, -1)
    return values, cycles, wall


def steady_state_ii(out_last: list[int]) -> float | None:
    """Mean cycles between consecutive output frames over the second half of the run."""
    if len(out_last) < 3:
        return None
    start = len(out_last) // 2
    return (out_last[-1] - out_last[start - 1]) / (len(out_last) - start)


def simulate(
    cfg: SimConfig,
    inputs: np.ndarray | None = None,
    torch_outputs: np.ndarray | None = None,
    quantizer_ties: np.ndarray | None = None,
) -> SimReport:
    """Simulate the build's RTL (BUILD_DIR/rtl, as the hardware stage wrote it) on golden (or given) inputs with
    the host part of the network around it, compare, measure cycles."""
    build_dir = Path(cfg.build_dir)
    design = load_build_design(build_dir)
    model = load_onnx(build_dir / design.manifest["source"])  # the graph this RTL was generated from
    # Absolute: the test bench runs in the RTL directory (memory files are named relative to it).
    sim_dir = ensure_writable_dir(cfg.sim_dir or build_dir / "sim", "simulation directory").resolve()
    if inputs is None:
        golden = load_golden(cfg.golden or build_golden_path(build_dir))
        inputs, torch_outputs = golden["inputs"], golden["outputs"]
        quantizer_ties = golden.get("quantizer_ties")
    if cfg.samples is not None:
        inputs = inputs[: cfg.samples]
        torch_outputs = None if torch_outputs is None else torch_outputs[: cfg.samples]
        quantizer_ties = None if quantizer_ties is None else quantizer_ties[: cfg.samples]
    host = HostGraphs.of_model(model)
    with warnings.catch_warnings():  # qonnx warns about datatype annotations it rounds to; not the user's concern
        warnings.simplefilter("ignore")
        accel_inputs = host.accelerator_inputs(inputs)
    fmt_in, fmt_out = design.layers[0].instream, design.layers[-1].outstream
    words = input_words(model, accel_inputs, fmt_in)
    values, cycles, wall = run_design(design, words, fmt_in, fmt_out, cfg, sim_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference, how = execute_accelerator_batched(model, accel_inputs)
        reference = reference.reshape(values.shape)
        final = host.outputs(values)
    mismatches = int(np.count_nonzero(values != reference))
    vs_pytorch = None
    if torch_outputs is not None:
        vs_pytorch = compare_outputs(final, torch_outputs, quantizer_ties=quantizer_ties)
    slowest = design.slowest
    latency = cycles["out_last"][0] - cycles["in_first"][0] + 1 if cycles["out_last"] else 0
    report = SimReport(
        frames=len(values),
        mismatches_vs_finn=mismatches,
        vs_pytorch=vs_pytorch,
        measured_ii=steady_state_ii(cycles["out_last"]),
        latency_cycles=latency,
        expected_latency=int(design.manifest.get("expected_latency", 0)),
        expected_ii=slowest.expected_cycles,
        slowest_layer=slowest.name,
        total_cycles=int(cycles["cycles"]),
        wall_s=round(wall, 3),
        backpressure=cfg.backpressure,
        outputs=values,
        cppsim=_cppsim(cfg, model, accel_inputs, sim_dir),
        sim_dir=sim_dir,
        rtl_hash=design.rtl_hash,
        layer_cycles=layer_timing(design, sim_dir / "layers", cfg.cache_dir) if cfg.layer_timing else [],
        reference=how,
    )
    write_json(sim_dir / "report.json", report.to_dict())
    return report


def _cppsim(cfg: SimConfig, model: Any, inputs: np.ndarray, sim_dir: Path) -> CppsimReport:
    if not cfg.cppsim:
        return CppsimReport(ran=False, reason="skipped: turned off (--no-cppsim)")
    try:
        return run_cppsim(model, inputs[: cfg.cppsim_samples], sim_dir / "cppsim")
    except BnnflowError as exc:  # keep the RTL result; the caller reports the failure
        return CppsimReport(ran=False, error=str(exc))
