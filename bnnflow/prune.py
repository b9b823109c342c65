"""`bnnflow prune`: build the unpruned network to learn its folding, prune and retrain for that folding, and
build the pruned network with the same folding, so that the two estimates compare like with like."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnnflow.dataflow.build import BuildResult, build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.errors import BnnflowError
from bnnflow.fileio import ensure_writable_dir
from bnnflow.hw.generate import write_rtl
from bnnflow.training.export import export_checkpoint
from bnnflow.training.prune import PruneConfig, PruneResult, prune_checkpoint

UNPRUNED_DIR = "unpruned"
FOLDING_FILE = "folding.json"


@dataclass(frozen=True)
class PruneRun:
    result: PruneResult
    unpruned: BuildResult
    pruned: BuildResult | None

    def lines(self) -> list[str]:
        r = self.result.report
        out = [
            f"method     {r['method']}",
            f"accuracy   unpruned {r['unpruned']['test_acc']:.2f}% -> pruned {r['pruned']['test_acc']:.2f}% "
            "(the final model, on the test split)",
            f"weights    {r['pruned']['kept']} of {r['pruned']['weights']} kept "
            f"(sparsity {r['pruned']['sparsity']:.3f})",
        ]
        before = self.unpruned.estimates or {}
        after = (self.pruned.estimates if self.pruned else None) or {}
        if before and after:
            ii0, ii1 = before["initiation_interval_cycles"], after["initiation_interval_cycles"]
            out.append(f"cycles     {ii0} -> {ii1} per frame ({ii0 / ii1:.2f}x), same folding")
        out.append(f"checkpoint {self.result.checkpoint}")
        if self.pruned is not None:
            out.append(f"build      {self.pruned.output_dir} (simulate: bnnflow sim {self.pruned.output_dir})")
        return out


def mvau_folding(build_dir: Path) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
    """From a build: (PE, SIMD) and (MH, MW) of each matrix-vector layer in order, and the most cycles any other
    layer takes (what pruning cannot lower)."""
    import json

    from qonnx.custom_op.registry import getCustomOp

    from bnnflow.artifacts import load_onnx, step_model_path
    from bnnflow.dataflow.fold import base_op_type

    model = load_onnx(step_model_path(build_dir, "estimate"))
    folds, dims = [], []
    for node in model.graph.node:
        if base_op_type(node.op_type) == "MVAU":
            inst = getCustomOp(node)
            folds.append((int(inst.get_nodeattr("PE")), int(inst.get_nodeattr("SIMD"))))
            dims.append((int(inst.get_nodeattr("MH")), int(inst.get_nodeattr("MW"))))
    estimates = json.loads((build_dir / "estimates.json").read_text())
    others = [layer["cycles"] for layer in estimates["layers"] if base_op_type(layer["op_type"]) != "MVAU"]
    return folds, dims, max(others, default=0)


def prune_for_build(
    checkpoint: Path,
    cfg: PruneConfig,
    out: Path,
    unpruned_build: Path,
    data_dir: Path | None = None,
    threads: int = 0,
    log: Callable[[str], None] | None = None,
) -> PruneResult:
    """Prune the checkpoint's network for the folding of `unpruned_build` (a build of the same network), writing
    the pruned network and that folding (folding.json) into `out`."""
    from bnnflow.training.prune import prunable_layers
    from bnnflow.training.train import model_from_checkpoint

    model, _ = model_from_checkpoint(checkpoint)
    folds, dims, floor = mvau_folding(unpruned_build)
    shapes = [(layer.rows, layer.cols) for layer in prunable_layers(model)]
    if dims != shapes:
        raise BnnflowError(
            f"the build's matrix-vector layers {dims} do not match the network's layers {shapes}; "
            "pruning needs a network that FINN lowers one weight layer to one MVAU"
        )
    shutil.copyfile(unpruned_build / FOLDING_FILE, out / FOLDING_FILE)
    return prune_checkpoint(checkpoint, cfg, out, folds, floor, data_dir, threads, log=log)


def pruned_build_config(build_cfg: BuildConfig, out: Path) -> BuildConfig:
    """The pruned network is built with the unpruned network's folding, so that the two compare like with like."""
    return build_cfg.replace(
        output_dir=out / "build",
        folding_config_file=out / FOLDING_FILE,
        target_cycles_per_frame=None,
        target_fps=None,
    )


def prune(
    checkpoint: Path,
    cfg: PruneConfig,
    out_dir: Path,
    build_cfg: BuildConfig,
    data_dir: Path | None = None,
    threads: int = 0,
    build_pruned: bool = True,
    log: Callable[[str], None] | None = None,
) -> PruneRun:
    """Export and build the unpruned checkpoint with `build_cfg` (its folding is the target), prune for it,
    then build the pruned network with the same folding file."""
    from bnnflow.training.prune import check_layers
    from bnnflow.training.train import model_from_checkpoint

    out = ensure_writable_dir(out_dir)
    say = log or (lambda _m: None)
    model, _ = model_from_checkpoint(checkpoint)
    check_layers(model, cfg)  # before the minutes of building
    unpruned_dir = out / UNPRUNED_DIR
    exported = export_checkpoint(checkpoint, unpruned_dir, data_dir)
    say(f"building the unpruned network for its folding ({unpruned_dir / 'build'})")
    before = build(exported.model_path, build_cfg.replace(output_dir=unpruned_dir / "build"), log=None)
    write_rtl(before.output_dir)
    result = prune_for_build(checkpoint, cfg, out, before.output_dir, data_dir, threads, log=say)
    after = None
    if build_pruned:
        say(f"building the pruned network with the same folding ({out / 'build'})")
        after = build(out / "model.onnx", pruned_build_config(build_cfg, out), log=None)
        write_rtl(after.output_dir)
    return PruneRun(result, before, after)


def prune_config(config_file: Path | None, **flags: Any) -> PruneConfig:
    """A PruneConfig from the `prune:` section of a training config (or a file of its own), flags overriding."""
    from bnnflow.configfile import read_mapping

    base: dict[str, Any] = {}
    if config_file is not None:
        raw = read_mapping(config_file, "pruning config")
        base = dict(raw.get("prune", raw))
    return PruneConfig.from_mapping({**base, **{k: v for k, v in flags.items() if v is not None}})
