"""The stages of a sweep point as functions a Dask worker runs: each works in its own directory under
SWEEP_DIR/stages/<stage>/<key>/, and marks it finished with stage.json, written last and atomically. A finished
stage is read back instead of run again; an unfinished one (a killed worker's) is cleared and run from the start."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bnnflow.errors import BnnflowError
from bnnflow.fileio import write_json
from bnnflow.sweepspec import Stage

STAGES_DIR = "stages"
MARKER = "stage.json"
LOG = "stage.log"


class StageFailed(Exception):
    """A stage raised: which one, and the error in one line (picklable, so it crosses from worker to client)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(stage, message)
        self.stage = stage
        self.message = message

    def __str__(self) -> str:
        return f"{self.stage}: {self.message}"


def one_line(exc: BaseException) -> str:
    """A user-facing error as is; anything else as its type and first line, with where it was raised."""
    if isinstance(exc, BnnflowError):
        return str(exc)
    text = (str(exc).strip().splitlines() or [""])[0]
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {text}{where}"


def stage_dir(sweep_dir: Path, stage: Stage) -> Path:
    return Path(sweep_dir) / STAGES_DIR / stage.name / stage.key


def finished(sweep_dir: Path, stage: Stage) -> dict[str, Any] | None:
    marker = stage_dir(sweep_dir, stage) / MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def run_stage(sweep_dir: str, stage: Stage, *deps: dict[str, Any]) -> dict[str, Any]:
    """Run one stage (or read its earlier result); `deps` are the records of the stages it depends on."""
    root = Path(sweep_dir)
    done = finished(root, stage)
    if done is not None:
        return done
    out = stage_dir(root, stage)
    if out.exists():  # left by a worker that died mid-stage
        shutil.rmtree(out)
    out.mkdir(parents=True)
    began = time.perf_counter()
    # What FINN, qonnx and brevitas print or warn goes to the stage's log, not to the terminal that runs the sweep.
    with (
        open(out / LOG, "w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("default")
        try:
            result = RUNNERS[stage.name](root, out, stage.config, {d["stage"]: d for d in deps})
        except Exception as exc:
            raise StageFailed(stage.name, one_line(exc)) from None
    record = {"stage": stage.name, "key": stage.key, "wall_s": round(time.perf_counter() - began, 2), **result}
    write_json(out / MARKER, record)
    return record


def _rel(root: Path, path: Path) -> str:
    return str(Path(path).resolve().relative_to(root.resolve()))


def _train(root: Path, out: Path, config: dict[str, Any], deps: dict[str, Any]) -> dict[str, Any]:
    from bnnflow.training.config import TrainConfig
    from bnnflow.training.data import load_dataset
    from bnnflow.training.export import export
    from bnnflow.training.train import METRICS, train

    # The thread count is part of the stage's inputs: torch's sums depend on it, so the same training must use
    # the same count wherever it runs (a Dask worker or the serial loop) to give the same model.
    cfg = TrainConfig().replace(**config).replace(out_dir=out, progress=False)
    data = load_dataset(cfg.dataset, cfg.data_dir)
    trained = train(cfg, data=data)
    exported = export(trained.model, data, out, cfg.golden_samples)
    return {
        "accuracy": trained.test_accuracy,
        "epochs": len(trained.metrics["epochs"]),
        "checkpoint": _rel(root, trained.checkpoint),
        "model": _rel(root, exported.model_path),
        "metrics": _rel(root, out / METRICS),
        "data_dir": None if cfg.data_dir is None else str(cfg.data_dir),
        "threads": cfg.threads,
    }


def _prune(root: Path, out: Path, config: dict[str, Any], deps: dict[str, Any]) -> dict[str, Any]:
    from bnnflow.prune import prune_for_build
    from bnnflow.training.prune import PruneConfig
    from bnnflow.training.train import METRICS

    trained, unpruned = deps["train"], deps["build"]
    data_dir = Path(trained["data_dir"]) if trained.get("data_dir") else None
    result = prune_for_build(root / trained["checkpoint"], PruneConfig.from_mapping(config), out,
                             root / unpruned["dir"], data_dir, trained["threads"])  # fmt: skip
    r = result.report
    return {
        "accuracy": r["pruned"]["test_acc"],
        "unpruned_accuracy": r["unpruned"]["test_acc"],
        "sparsity": r["pruned"]["sparsity"],
        "kept_weights": r["pruned"]["kept"],
        "checkpoint": _rel(root, result.checkpoint),
        "model": _rel(root, out / "model.onnx"),
        "folding": _rel(root, out / "folding.json"),
        "metrics": _rel(root, out / METRICS),
    }


def _build(root: Path, out: Path, config: dict[str, Any], deps: dict[str, Any]) -> dict[str, Any]:
    from bnnflow.dataflow.build import build
    from bnnflow.dataflow.config import BuildConfig
    from bnnflow.hw.generate import write_rtl

    source = deps.get("prune") or deps["train"]
    cfg = BuildConfig().replace(**config).replace(output_dir=out)
    if "folding" in source:
        cfg = cfg.replace(folding_config_file=root / source["folding"])
    result = build(root / source["model"], cfg, log=None)
    if result.stopped:
        raise BnnflowError(f"the build stopped early: {result.stopped}")
    design = write_rtl(out)
    est = result.estimates or {}
    return {
        "dir": _rel(root, out),
        "estimated_ii": est.get("initiation_interval_cycles"),
        "estimated_latency": design.manifest.get("expected_latency"),
        "finn_estimate": est.get("total"),
        "rtl_hash": design.rtl_hash,
        "layers": [
            {"name": layer["name"], "op_type": layer["op_type"], "cycles": layer["cycles"]}
            for layer in est.get("layers", [])
        ],
    }


def _sim(root: Path, out: Path, config: dict[str, Any], deps: dict[str, Any]) -> dict[str, Any]:
    from bnnflow.sim.harness import SimConfig, simulate

    build_dir = root / deps["build"]["dir"]
    report = simulate(SimConfig(build_dir=build_dir, sim_dir=out, cppsim=False, layer_timing=True, **config))
    vs = report.vs_pytorch
    return {
        "frames": report.frames,
        "output_elements": int(report.outputs.size),
        "differing_elements": report.mismatches_vs_finn,
        "pytorch_mismatches": None if vs is None else vs.mismatches,
        "pytorch_top1_divergent": None if vs is None else vs.top1_divergent,
        "rtl_ok": report.rtl_ok,
        "measured_ii": report.measured_ii,
        "expected_ii": report.expected_ii,
        "latency": report.latency_cycles,
        "rtl_hash": report.rtl_hash,
        "layer_cycles": report.layer_cycles,
    }


def _synth(root: Path, out: Path, config: dict[str, Any], deps: dict[str, Any]) -> dict[str, Any]:
    from bnnflow.hw.fpga import TARGETS
    from bnnflow.hw.generate import load_build_design
    from bnnflow.hw.synth import BRAM_UNIT, XILINX_FAMILIES, family_of_part, resource_counts, synthesize

    part = config["part"]
    family = family_of_part(part)
    design = load_build_design(root / deps["build"]["dir"])
    util = synthesize(design, out / "yosys", family)
    counts = resource_counts(util.cells, family)
    fits = None
    if part in TARGETS:
        target = TARGETS[part]
        # Before placement: an iCE40 logic cell holds one LUT and one flip-flop, an ECP5 slice half has both too.
        logic = max(counts["luts"], counts["ffs"])
        fits = logic <= target.capacity[target.logic] and counts["bram"] <= target.capacity[target.bram]
    return {
        "part": part,
        "family": family,
        **counts,
        "bram_unit": BRAM_UNIT["xilinx" if family in XILINX_FAMILIES else family],
        "fits": fits,
        "rtl_hash": design.rtl_hash,
    }


RUNNERS: dict[str, Callable[[Path, Path, dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "train": _train,
    "prune": _prune,
    "build": _build,
    "sim": _sim,
    "synth": _synth,
}
