"""The dataflow build: run the named steps in order, checkpoint each as intermediate/<step>.onnx, verify each
against golden.npz, and write folding.json, estimates.json/.txt and verification.json."""

from __future__ import annotations

import contextlib
import os
import random
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnnflow.dataflow.config import BuildConfig, BuildTarget
from bnnflow.dataflow.estimate import estimate, format_table
from bnnflow.dataflow.fold import extract_folding, read_folding_file
from bnnflow.dataflow.steps import STEPS, step_names
from bnnflow.dataflow.verify import StepCheck, verify_step
from bnnflow.dataflow.vivado import find_vendor_tools, missing_tools_message, run_vendor_steps
from bnnflow.errors import BnnflowError
from bnnflow.fileio import atomic_path, ensure_writable_dir, write_json, write_text
from bnnflow.training.export import GOLDEN_FILE, load_golden, load_onnx

INTERMEDIATE = "intermediate"


@dataclass
class BuildResult:
    output_dir: Path
    steps: list[str] = field(default_factory=list)
    checks: list[StepCheck] = field(default_factory=list)
    estimates: dict[str, Any] | None = None
    stopped: str | None = None  # why the build ended before cfg.to, if it did

    @property
    def final_model(self) -> Path:
        return self.output_dir / INTERMEDIATE / f"{self.steps[-1]}.onnx"


@contextlib.contextmanager
def finn_environment(build_dir: Path) -> Iterator[None]:
    """FINN reads FINN_BUILD_DIR for its scratch files; set it for this build only."""
    scratch = Path(build_dir).resolve() / "finn_tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    old = os.environ.get("FINN_BUILD_DIR")
    os.environ["FINN_BUILD_DIR"] = str(scratch)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("FINN_BUILD_DIR", None)
        else:
            os.environ["FINN_BUILD_DIR"] = old


def _step_range(cfg: BuildConfig) -> list[str]:
    names = step_names()
    for label, value in (("start_step", cfg.start_step), ("stop_step", cfg.stop_step)):
        if value is not None and value not in names:
            raise BnnflowError(f"unknown {label} '{value}'; the steps are: {', '.join(names)}")
    start = names.index(cfg.start_step) if cfg.start_step else 0
    stop = names.index(cfg.stop_step) if cfg.stop_step else len(names) - 1
    if stop < start:
        raise BnnflowError(f"stop_step '{cfg.stop_step}' comes before start_step '{cfg.start_step}'")
    return names[start : stop + 1]


def save_model(model: Any, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        model.save(str(tmp))


def build(model_path: Path, cfg: BuildConfig, log: Callable[[str], None] | None = None) -> BuildResult:
    """Compile an exported QONNX model to a folded dataflow graph with estimates (and further with Vivado)."""
    out = ensure_writable_dir(cfg.output_dir, "build directory")
    inter = out / INTERMEDIATE
    inter.mkdir(exist_ok=True)
    run = _step_range(cfg)
    if cfg.folding_config_file is not None and "fold" in run:
        read_folding_file(cfg.folding_config_file)  # a missing or malformed file fails before any step runs
    names = step_names()
    if run[0] == names[0]:
        model = load_onnx(Path(model_path))
    else:
        previous = inter / f"{names[names.index(run[0]) - 1]}.onnx"
        if not previous.is_file():
            raise BnnflowError(f"cannot start at '{run[0]}': {previous} is missing; run the earlier steps first")
        model = load_onnx(previous)
    golden_path = cfg.golden if cfg.golden is not None else Path(model_path).parent / GOLDEN_FILE
    golden = load_golden(golden_path) if cfg.verify else None
    recorded = {**cfg.to_dict(), "model": str(Path(model_path).resolve())}
    recorded["golden"] = str(golden_path.resolve()) if golden_path.is_file() else None
    write_json(out / "build_config.json", recorded)
    result = BuildResult(out)
    with finn_environment(out):
        for name in run:
            model = _run_step(name, model, cfg)
            save_model(model, inter / f"{name}.onnx")
            result.steps.append(name)
            if golden is not None:
                check = verify_step(name, model, golden, cfg.verify_samples)
                result.checks.append(check)
                write_json(out / "verification.json", _verification(result.checks))
                if log:
                    detail = f", max |diff| {check.max_abs_diff:.3g}" if check.max_abs_diff is not None else ""
                    log(f"{name}: {check.samples} golden inputs, top-1 mismatches {check.top1_mismatches}{detail}")
                if not check.ok:
                    raise BnnflowError(
                        f"step '{name}' diverged from PyTorch: top-1 differs on {check.top1_mismatches} of "
                        f"{check.samples} golden inputs; see {out / 'verification.json'}"
                    )
            elif log:
                log(f"{name}: done")
        if result.steps[-1] == "estimate":
            write_json(out / "folding.json", extract_folding(model))
            result.estimates = estimate(model, cfg)
            write_json(out / "estimates.json", result.estimates)
            write_text(out / "estimates.txt", format_table(result.estimates))
            if cfg.to is not BuildTarget.ESTIMATES:
                tools = find_vendor_tools(cfg.finn_docker_image)
                if tools.available:
                    run_vendor_steps(cfg, result.final_model, tools)
                else:
                    result.stopped = missing_tools_message(tools, cfg)
                    if log:
                        log(result.stopped)
    return result


def _run_step(name: str, model: Any, cfg: BuildConfig) -> Any:
    """Run one step; FINN's prints and warnings go to build.log, its exceptions become one line."""
    log_path = Path(cfg.output_dir) / "build.log"
    try:
        with (
            open(log_path, "a") as log,
            contextlib.redirect_stdout(log),
            warnings.catch_warnings(record=True) as seen,
        ):
            warnings.simplefilter("always")
            log.write(f"== step {name}\n")
            # qonnx names new tensors with random strings: seed them so the same input gives the same bytes.
            state = random.getstate()
            random.seed(zlib.crc32(name.encode()))
            try:
                model = STEPS[name](model, cfg)
            finally:
                random.setstate(state)
            for w in seen:
                log.write(f"warning: {w.message}\n")
        return model
    except BnnflowError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BnnflowError(f"build step '{name}' failed: {type(exc).__name__}: {first}") from exc


def _verification(checks: list[StepCheck]) -> dict[str, Any]:
    first_bad = next((c.step for c in checks if not c.ok), None)
    return {"steps": [c.to_dict() for c in checks], "first_divergent_step": first_bad}
