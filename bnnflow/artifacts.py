"""The build directory's layout and artifact names, and the generic helpers every stage uses on them: loading
ONNX and golden files, executing a graph input by input, and comparing outputs with PyTorch's.

A build directory (`bnnflow build --out DIR`) holds, relative to DIR:

    golden.npz                       the golden inputs as the built graph consumes them, and PyTorch's outputs
    build_config.json                the BuildConfig used (paths in it relative to DIR)
    intermediate/<step>.onnx         each step's graph; after partitioning, the accelerator's graph
    intermediate/dataflow_parent.onnx  the host graph around the accelerator, for reading (the accelerator
                                     graphs carry their own copy)
    verification.json, folding.json, estimates.json, estimates.txt, build.log
    rtl/                             the accelerator's RTL, written once, with manifest.json and its hash
    sim/, synth/, fpga/<target>/, xilinx/   written by the later stages from rtl/
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bnnflow.errors import BnnflowError
from bnnflow.fileio import atomic_path

MODEL_FILE = "model.onnx"
GOLDEN_FILE = "golden.npz"
INTERMEDIATE = "intermediate"
PARENT_FILE = "dataflow_parent.onnx"  # inside INTERMEDIATE
BUILD_CONFIG_FILE = "build_config.json"
VERIFICATION_FILE = "verification.json"
# Metadata of an accelerator graph: its host graph (the nodes around it), a base64 serialized ONNX model.
PARENT_PROP = "bnnflow.dataflow_parent"
# Float outputs agree when they differ by at most this, relative to max(1, |golden value|).
FLOAT_TOLERANCE = 1e-5


def load_onnx(path: Path) -> Any:
    """A qonnx ModelWrapper for `path`, or a one-line error if it is not a readable ONNX model."""
    from qonnx.core.modelwrapper import ModelWrapper

    path = Path(path)
    if not path.is_file():
        raise BnnflowError(f"ONNX model {path} not found")
    try:
        model = ModelWrapper(str(path))
    except Exception as exc:
        raise BnnflowError(f"{path} is not a valid ONNX model ({type(exc).__name__}); export it again") from exc
    if len(model.graph.node) == 0 or len(model.graph.input) == 0 or len(model.graph.output) == 0:
        raise BnnflowError(f"{path} is not a valid ONNX model (empty graph); export it again")
    return _batch_of_one(model, path)


def _batch_of_one(model: Any, path: Path) -> Any:
    """A graph exported with a dynamic batch dimension, fixed to the batch of one that the flow executes."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not dims or (dims[0].HasField("dim_value") and dims[0].dim_value == 1):
        return model
    from qonnx.util.cleanup import cleanup_model

    try:
        return cleanup_model(model, override_inpsize=1)
    except Exception as exc:
        raise BnnflowError(
            f"{path}: cannot fix its batch dimension ({dims[0].dim_param or dims[0].dim_value}) to 1 "
            f"({type(exc).__name__}); export it with a batch of one"
        ) from exc


def save_model(model: Any, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        model.save(str(tmp))


def save_golden(dest: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)


def load_golden(path: Path) -> dict[str, np.ndarray]:
    """inputs, outputs (and labels, where known) of a golden.npz; a missing or corrupt file is one line."""
    path = Path(path)
    if not path.is_file():
        raise BnnflowError(
            f"golden file {path} not found; run `bnnflow export`, or `bnnflow golden MODEL --inputs X.npy` "
            "for a model exported elsewhere"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise BnnflowError(f"golden file {path} is corrupt ({type(exc).__name__}); write it again") from exc
    missing = {"inputs", "outputs"} - set(arrays)
    if missing:
        raise BnnflowError(f"golden file {path} lacks {sorted(missing)}; write it again")
    if len(arrays["inputs"]) != len(arrays["outputs"]) or len(arrays["inputs"]) == 0:
        raise BnnflowError(
            f"golden file {path} holds {len(arrays['inputs'])} inputs but {len(arrays['outputs'])} outputs; "
            "write it again"
        )
    return arrays


def execute(model: Any, inputs: np.ndarray, execute_onnx: Any = None) -> np.ndarray:
    """Run a (Q)ONNX graph of batch size 1 on every row of `inputs`, node by node (qonnx' executor unless
    another, such as FINN's, is given); one flattened output row per input."""
    if execute_onnx is None:
        from qonnx.core import onnx_exec

        execute_onnx = onnx_exec.execute_onnx

    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    shape = model.get_tensor_shape(iname)
    outs = []
    for row in inputs:
        result = execute_onnx(model, {iname: np.asarray(row).reshape(shape).astype(np.float32)})
        outs.append(np.asarray(result[oname]).reshape(-1))
    return np.stack(outs)


CHUNK = 500
"""Frames per batched step: bounds the memory of wide thresholding comparisons."""
CHECK_FRAMES = 4
"""Frames of every batched run compared with the per-frame execution."""


class BatchedRun:
    """Runs `chunk_fn(model, frames)` over all inputs a chunk at a time, after checking it against `per_frame` on
    the first CHECK_FRAMES frames. An exception or any difference there means the batched path does not hold for
    this graph: the whole run is then done by `per_frame`, and `reason` says why."""

    def __init__(self, chunk_fn: Callable[[Any, np.ndarray], np.ndarray], per_frame: Callable[[np.ndarray], Any]):
        self.chunk_fn = chunk_fn
        self.per_frame = per_frame
        self.batched = False
        self.reason = ""

    def __call__(self, model: Any, inputs: np.ndarray) -> np.ndarray:
        chunk = CHUNK
        head = min(CHECK_FRAMES, len(inputs))
        expected = np.asarray(self.per_frame(inputs[:head])).reshape(head, -1)
        try:
            first = self.chunk_fn(model, inputs[:head])
        except Exception as exc:  # an op this path does not know how to batch
            return self._fallback(inputs, f"{type(exc).__name__}: {exc}".splitlines()[0])
        if first.shape != expected.shape or not np.array_equal(first, expected):
            return self._fallback(inputs, "batched and per-frame results differ")
        parts = [first] + [self.chunk_fn(model, inputs[i : i + chunk]) for i in range(head, len(inputs), chunk)]
        self.batched = True
        return np.concatenate(parts)

    def _fallback(self, inputs: np.ndarray, reason: str) -> np.ndarray:
        self.batched, self.reason = False, reason
        return np.asarray(self.per_frame(inputs)).reshape(len(inputs), -1)


def with_batch(model: Any, n: int) -> Any:
    """A copy of a batch-1 (Q)ONNX graph for `n` frames at once (qonnx' ChangeBatchSize, shapes inferred again)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    return ModelWrapper(model.model.__deepcopy__()).transform(ChangeBatchSize(n)).transform(InferShapes())


def _execute_chunk(model: Any, x: np.ndarray) -> np.ndarray:
    from qonnx.core.onnx_exec import execute_onnx

    batched = with_batch(model, len(x))
    iname, oname = batched.graph.input[0].name, batched.graph.output[0].name
    out = execute_onnx(batched, {iname: np.asarray(x).reshape(batched.get_tensor_shape(iname)).astype(np.float32)})
    return np.asarray(out[oname]).reshape(len(x), -1)


def execute_batched(model: Any, inputs: np.ndarray) -> np.ndarray:
    """`execute` (qonnx), a chunk of frames at a time where the graph allows it, checked on the first frames."""
    return BatchedRun(_execute_chunk, lambda x: execute(model, x))(model, inputs)


@dataclass(frozen=True)
class Comparison:
    """How outputs compare with PyTorch's golden outputs, every element and every top-1 decision.

    `kind` is "values" (the same tensor as PyTorch's) or "label" (a class index against PyTorch's logits).
    A top-1 difference is a divergence only where PyTorch's own choice is clear: the predicted class scores
    below PyTorch's best by more than the tolerance. Otherwise it is a near-tie, counted but not an error; so is
    any difference on a sample with a quantizer tie (an activation on a rounding boundary, see golden.npz).
    """

    kind: str
    samples: int
    elements: int  # compared output elements (values) or decisions (label)
    mismatches: int  # values: elements beyond the tolerance (integer outputs: any difference)
    max_abs_diff: float | None  # over the samples without quantizer ties
    top1_divergent: int
    near_ties: int
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and self.top1_divergent == 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        parts = [f"{self.samples} inputs"]
        if self.kind == "values":
            parts.append(f"{self.mismatches} of {self.elements} elements beyond tolerance")
            if self.max_abs_diff is not None:
                parts.append(f"max |diff| {self.max_abs_diff:.3g}")
        parts.append(f"top-1 divergent {self.top1_divergent}")
        parts.append(f"near-ties {self.near_ties}")
        return ", ".join(parts)


def _tolerance(golden: np.ndarray, tolerance: float) -> np.ndarray:
    return tolerance * np.maximum(1.0, np.abs(golden))


def _top1(predicted: np.ndarray, golden: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: (divergent, near-tie) of predicted class indices against golden logits."""
    rows = np.arange(len(predicted))
    best = golden.max(axis=1)
    chosen = golden[rows, predicted]
    within = chosen >= best - _tolerance(best, tolerance)
    differs = predicted != golden.argmax(axis=1)
    return ~within, differs & within


def compare_outputs(
    actual: np.ndarray,
    golden: np.ndarray,
    integer: bool = False,
    tolerance: float = FLOAT_TOLERANCE,
    quantizer_ties: np.ndarray | None = None,
) -> Comparison:
    """Compare outputs with golden (PyTorch) outputs, one row per sample.

    If `actual` has one element per sample where golden has several, it is a class index (label selection).
    Otherwise every element is compared: exactly when `integer`, else within `tolerance` relative to
    max(1, |golden|); and for outputs with several elements, the top-1 decision as described in Comparison.
    `quantizer_ties` marks samples on which some activation of the network lies on a quantizer's rounding
    boundary (see golden.npz): float summation order decides such a value, so any difference on those samples
    is a near-tie, counted as such, not a divergence.
    """
    n = len(golden)
    g = np.asarray(golden, dtype=np.float64).reshape(n, -1)
    a = np.asarray(actual, dtype=np.float64).reshape(n, -1)
    tied = np.zeros(n, bool) if quantizer_ties is None else np.asarray(quantizer_ties, bool).reshape(-1)[:n]
    if a.shape[1] == 1 and g.shape[1] > 1:
        idx = np.rint(a[:, 0]).astype(np.int64)
        if np.any(idx < 0) or np.any(idx >= g.shape[1]) or not np.all(a[:, 0] == idx):
            return Comparison("label", n, n, n, None, n, 0, tolerance)
        divergent, near = _top1(idx, g, tolerance)
        return Comparison("label", n, n, 0, None, int(np.count_nonzero(divergent & ~tied)),
                          int(np.count_nonzero(near | (divergent & tied))), tolerance)  # fmt: skip
    if a.shape != g.shape:
        raise BnnflowError(f"outputs of shape {a.shape[1:]} per input cannot be compared with golden {g.shape[1:]}")
    diff = np.abs(a - g)
    bad = diff != 0 if integer else diff > _tolerance(g, tolerance)
    divergent = near = np.zeros(n, bool)
    if g.shape[1] > 1:
        divergent, near = _top1(a.argmax(axis=1), g, tolerance)
    off = bad.any(axis=1) | divergent
    return Comparison("values", n, int(g.size), int(np.count_nonzero(bad[~tied])),
                      float(diff[~tied].max(initial=0.0)), int(np.count_nonzero(divergent & ~tied)),
                      int(np.count_nonzero((near & ~tied) | (off & tied))), tolerance)  # fmt: skip


# ------------------------------------------------------------------------------------------ build directory
def intermediate_dir(build_dir: Path) -> Path:
    return Path(build_dir) / INTERMEDIATE


def step_model_path(build_dir: Path, step: str) -> Path:
    return intermediate_dir(build_dir) / f"{step}.onnx"


def build_golden_path(build_dir: Path) -> Path:
    """The golden data a build verified against, in the form its graph consumes (inputs scaled, if asked)."""
    return Path(build_dir) / GOLDEN_FILE


def relative_to(path: Path, base: Path) -> str:
    """`path` relative to `base` (with .. where needed), for storing inside a build."""
    import os

    return os.path.relpath(Path(path).resolve(), Path(base).resolve())
