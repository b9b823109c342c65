"""The dataflow build: run the named steps in order, checkpoint each as intermediate/<step>.onnx, verify each
against golden.npz, and write folding.json, estimates.json/.txt and verification.json."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bnnflow.artifacts import (
    BUILD_CONFIG_FILE,
    GOLDEN_FILE,
    PARENT_FILE,
    VERIFICATION_FILE,
    intermediate_dir,
    load_golden,
    load_onnx,
    relative_to,
    save_golden,
    save_model,
    step_model_path,
)
from bnnflow.dataflow.config import BuildConfig, BuildTarget
from bnnflow.dataflow.estimate import estimate, format_table
from bnnflow.dataflow.fold import extract_folding, read_folding_file
from bnnflow.dataflow.host import HostGraphs, host_graph
from bnnflow.dataflow.steps import STEPS, step_names
from bnnflow.dataflow.verify import StepCheck, verify_step
from bnnflow.dataflow.vivado import find_vendor_tools, missing_tools_message, run_vendor_steps
from bnnflow.errors import BnnflowError
from bnnflow.fileio import ensure_writable_dir, write_json, write_text


@dataclass
class BuildResult:
    output_dir: Path
    steps: list[str] = field(default_factory=list)
    checks: list[StepCheck] = field(default_factory=list)
    estimates: dict[str, Any] | None = None
    host_nodes: tuple[list[str], list[str]] = ([], [])  # 'name (op)' before and after the accelerator
    stopped: str | None = None  # why the build ended before cfg.to, if it did

    @property
    def final_model(self) -> Path:
        return step_model_path(self.output_dir, self.steps[-1])


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


def scaled_golden(golden: dict[str, np.ndarray], cfg: BuildConfig, source: Path) -> dict[str, np.ndarray]:
    """The golden data as the built graph consumes it: with a declared input type, the inputs times
    input_scale, which must then be integers of that type."""
    if cfg.input_datatype is None:
        return golden
    from bnnflow.dataflow.transforms import input_datatype

    dt = input_datatype(cfg.input_datatype)
    x = golden["inputs"].astype(np.float64) * cfg.input_scale
    raw = np.rint(x)
    worst = int(np.argmax(np.abs(x - raw).reshape(-1)))
    if abs(x.reshape(-1)[worst] - raw.reshape(-1)[worst]) > 1e-3:
        value = golden["inputs"].reshape(-1)[worst]
        raise BnnflowError(
            f"golden input {value:.6g} in {source} times input_scale {cfg.input_scale:g} is not an integer; "
            f"the data do not arrive as {cfg.input_datatype} with this scale (check --input-scale)"
        )
    bad = [v for v in np.unique(raw) if not dt.allowed(v)]
    if bad:
        raise BnnflowError(
            f"golden inputs in {source} times input_scale {cfg.input_scale:g} include {bad[0]:g}, outside "
            f"{cfg.input_datatype}; check --input-datatype and --input-scale"
        )
    return {**golden, "inputs": raw.astype(np.float32)}


def build(model_path: Path, cfg: BuildConfig, log: Callable[[str], None] | None = None) -> BuildResult:
    """Compile an exported QONNX model to a folded dataflow graph with estimates (and further with Vivado)."""
    out = ensure_writable_dir(cfg.output_dir, "build directory")
    inter = intermediate_dir(out)
    inter.mkdir(exist_ok=True)
    run = _step_range(cfg)
    if cfg.folding_config_file is not None and "fold" in run:
        read_folding_file(cfg.folding_config_file)  # a missing or malformed file fails before any step runs
    names = step_names()
    first = run[0] == names[0]
    if first:
        model = load_onnx(Path(model_path))
    else:
        previous = step_model_path(out, names[names.index(run[0]) - 1])
        if not previous.is_file():
            raise BnnflowError(f"cannot start at '{run[0]}': {previous} is missing; run the earlier steps first")
        model = load_onnx(previous)
    golden = _golden(Path(model_path), cfg, out, first)
    recorded = {**cfg.to_dict(), "model": relative_to(Path(model_path), out), "output_dir": "."}
    if cfg.golden is not None:
        recorded["golden"] = relative_to(cfg.golden, out)
    write_json(out / BUILD_CONFIG_FILE, recorded)
    result = BuildResult(out)
    with finn_environment(out):
        for name in run:
            model = _run_step(name, model, cfg)
            save_model(model, step_model_path(out, name))
            result.steps.append(name)
            parent = host_graph(model)
            if parent is not None and name == "create_dataflow_partition":
                save_model(parent, inter / PARENT_FILE)
                result.host_nodes = HostGraphs.of(parent).node_names()
                if log:
                    log(host_line(result.host_nodes))
            if golden is not None and cfg.verify:
                with _to_build_log(out / "build.log", f"verify {name}"):
                    check = verify_step(name, model, golden, cfg.verify_samples)
                result.checks.append(check)
                write_json(out / VERIFICATION_FILE, _verification(result.checks))
                if log:
                    log(f"{name}: {check.comparison.summary()}")
                if not check.ok:
                    c = check.comparison
                    parts = [f"{c.mismatches} of {c.elements} output elements differ"] if c.mismatches else []
                    parts += [f"top-1 diverges on {c.top1_divergent}"] if c.top1_divergent else []
                    what = "; ".join(parts)
                    raise BnnflowError(
                        f"step '{name}' diverged from PyTorch on {c.samples} golden inputs: {what} "
                        f"(tolerance {c.tolerance:g}); see {out / VERIFICATION_FILE}"
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


@contextlib.contextmanager
def _to_build_log(log_path: Path, header: str) -> Iterator[Any]:
    """FINN's and qonnx' prints, log records and warnings go to build.log, not to the user's terminal."""
    with (
        open(log_path, "a") as log,
        contextlib.redirect_stdout(log),
        warnings.catch_warnings(record=True) as seen,
    ):
        warnings.simplefilter("always")
        handler = logging.StreamHandler(log)
        root = logging.getLogger()
        saved = root.handlers[:]
        root.handlers = [handler]
        log.write(f"== {header}\n")
        try:
            yield log
        finally:
            root.handlers = saved
            for w in seen:
                log.write(f"warning: {w.message}\n")


def _run_step(name: str, model: Any, cfg: BuildConfig) -> Any:
    """Run one step; FINN's prints and warnings go to build.log, its exceptions become one line."""
    try:
        with _to_build_log(Path(cfg.output_dir) / "build.log", f"step {name}"):
            # qonnx names new tensors with random strings: seed them so the same input gives the same bytes.
            state = random.getstate()
            random.seed(zlib.crc32(name.encode()))
            try:
                model = STEPS[name](model, cfg)
            finally:
                random.setstate(state)
        return model
    except BnnflowError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BnnflowError(f"build step '{name}' failed: {type(exc).__name__}: {first}") from exc


def host_line(host_nodes: tuple[list[str], list[str]]) -> str:
    before, after = host_nodes
    if not before and not after:
        return "host: nothing; the accelerator takes the network's input and gives its output"
    return f"host: before the accelerator {', '.join(before) or 'nothing'}; after it {', '.join(after) or 'nothing'}"


def _golden(model_path: Path, cfg: BuildConfig, out: Path, first: bool) -> dict[str, np.ndarray] | None:
    """The build's own golden.npz: written from the source golden at the first step, read when resuming.
    Without verification a missing source golden is no error (the build then has none)."""
    own = out / GOLDEN_FILE
    if not first and own.is_file():
        return load_golden(own)
    source = cfg.golden if cfg.golden is not None else model_path.parent / GOLDEN_FILE
    if not cfg.verify and not source.is_file():
        return None
    golden = scaled_golden(load_golden(source), cfg, source)
    save_golden(own, golden)
    return golden


def _verification(checks: list[StepCheck]) -> dict[str, Any]:
    first_bad = next((c.step for c in checks if not c.ok), None)
    return {"steps": [c.to_dict() for c in checks], "first_divergent_step": first_bad}
