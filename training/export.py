"""QONNX export with golden data, and the self-check that executes the exported graph with qonnx."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from bnnflow.errors import BnnflowError
from bnnflow.fileio import atomic_open, atomic_path, ensure_writable_dir
from bnnflow.training.data import Dataset, load_dataset
from bnnflow.training.models import BNN

MODEL_FILE = "model.onnx"
GOLDEN_FILE = "golden.npz"
# Float outputs must agree to this (relative to max(1, |value|)); integer outputs must be equal.
FLOAT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ExportCheck:
    """Result of executing the exported graph on the golden inputs."""

    samples: int
    integer_outputs: bool
    max_abs_diff: float
    mismatches: int

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


@dataclass(frozen=True)
class ExportResult:
    model_path: Path
    golden_path: Path
    check: ExportCheck


@contextlib.contextmanager
def _quiet_torch_onnx() -> Iterator[None]:
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_qonnx_model(model: BNN, dest: Path) -> None:
    """Write `model` as one self-contained QONNX file with its input annotated as UINT8 pixels."""
    from brevitas.export import export_qonnx
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    model = model.cpu().eval()
    with tempfile.TemporaryDirectory(prefix="bnnflow-export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        # The dynamo exporter prints progress lines and warns about unrelated torchvision ops.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), _quiet_torch_onnx():
            warnings.simplefilter("ignore")
            export_qonnx(model, args=model.example_input(1), export_path=str(raw))
        proto = onnx.load(str(raw), load_external_data=True)
    wrapper = cleanup_model(ModelWrapper(proto))
    wrapper.set_tensor_datatype(wrapper.graph.input[0].name, DataType["UINT8"])
    wrapper.model.producer_name = "bnnflow"
    wrapper.model.producer_version = ""
    wrapper.set_metadata_prop("bnnflow.spec", json.dumps(model.spec.to_dict(), sort_keys=True))
    with atomic_open(dest) as fh:
        fh.write(wrapper.model.SerializeToString(deterministic=True))


def golden_arrays(model: BNN, data: Dataset, samples: int) -> dict[str, np.ndarray]:
    """The first `samples` test images in the exported input layout and the PyTorch outputs on them."""
    n = min(samples, len(data.test_y))
    x = data.test_x[:n].astype(np.float32)
    if not model.spec.is_cnn:
        x = x.reshape(n, -1)
    with torch.no_grad():
        y = model.cpu().eval()(torch.from_numpy(x)).numpy()
    return {"inputs": x, "outputs": y.astype(np.float32), "labels": data.test_y[:n].astype(np.int64)}


def save_golden(dest: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)


def load_golden(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError as exc:
        raise BnnflowError(f"golden file {path} not found; run `bnnflow export` first") from exc
    except (OSError, ValueError) as exc:
        raise BnnflowError(f"golden file {path} is corrupt ({exc}); run `bnnflow export` again") from exc
    missing = {"inputs", "outputs"} - set(arrays)
    if missing:
        raise BnnflowError(f"golden file {path} lacks {sorted(missing)}; run `bnnflow export` again")
    return arrays


def load_onnx(path: Path) -> Any:
    """A qonnx ModelWrapper for `path`, or a one-line error if it is not a readable ONNX model."""
    from qonnx.core.modelwrapper import ModelWrapper

    path = Path(path)
    if not path.is_file():
        raise BnnflowError(f"ONNX model {path} not found")
    try:
        return ModelWrapper(str(path))
    except Exception as exc:
        raise BnnflowError(f"{path} is not a valid ONNX model ({type(exc).__name__}); export it again") from exc


def execute(model: Any, inputs: np.ndarray, execute_onnx: Any = None) -> np.ndarray:
    """Run a (Q)ONNX graph of batch size 1 on every row of `inputs`, node by node (qonnx' executor unless
    another, such as FINN's, is given)."""
    if execute_onnx is None:
        from qonnx.core import onnx_exec

        execute_onnx = onnx_exec.execute_onnx

    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    shape = model.get_tensor_shape(iname)
    outs = []
    for row in inputs:
        result = execute_onnx(model, {iname: row.reshape(shape).astype(np.float32)})
        outs.append(np.asarray(result[oname]).reshape(-1))
    return np.stack(outs)


def compare(actual: np.ndarray, expected: np.ndarray, integer: bool) -> tuple[float, int]:
    """Largest absolute difference and number of mismatching elements (every element is compared)."""
    actual = actual.reshape(expected.shape)
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    if integer:
        bad = int(np.count_nonzero(diff))
    else:
        bad = int(np.count_nonzero(diff > FLOAT_TOLERANCE * np.maximum(1.0, np.abs(expected))))
    return float(diff.max(initial=0.0)), bad


def check_export(model_path: Path, golden: dict[str, np.ndarray]) -> ExportCheck:
    """Execute the exported graph on the golden inputs and compare with the PyTorch outputs."""
    from qonnx.core.datatype import DataType
    from qonnx.transformation.infer_datatypes import InferDataTypes

    wrapper = load_onnx(model_path).transform(InferDataTypes())
    out_dtype = wrapper.get_tensor_datatype(wrapper.graph.output[0].name)
    integer = out_dtype is not None and out_dtype.is_integer() and out_dtype != DataType["FLOAT32"]
    actual = execute(wrapper, golden["inputs"])
    max_diff, bad = compare(actual, golden["outputs"], integer)
    return ExportCheck(len(golden["inputs"]), integer, max_diff, bad)


def export(model: BNN, data: Dataset, out_dir: Path, golden_samples: int = 32) -> ExportResult:
    """Write model.onnx and golden.npz into `out_dir` and verify one against the other."""
    out = ensure_writable_dir(out_dir)
    model_path, golden_path = out / MODEL_FILE, out / GOLDEN_FILE
    export_qonnx_model(model, model_path)
    golden = golden_arrays(model, data, golden_samples)
    save_golden(golden_path, golden)
    check = check_export(model_path, golden)
    if not check.ok:
        raise BnnflowError(
            f"exported {model_path} disagrees with PyTorch on {check.mismatches} output elements "
            f"(max |diff| {check.max_abs_diff:.3g}); this is a bug, please report it with the checkpoint"
        )
    return ExportResult(model_path, golden_path, check)


def export_checkpoint(
    checkpoint: Path,
    out_dir: Path | None = None,
    data_dir: Path | None = None,
    golden_samples: int | None = None,
) -> ExportResult:
    """Export the network in a training checkpoint, taking golden inputs from its data set's test split."""
    from bnnflow.training.train import model_from_checkpoint

    model, ckpt = model_from_checkpoint(checkpoint)
    cfg = ckpt["config"]
    data = load_dataset(cfg["dataset"], data_dir if data_dir is not None else cfg.get("data_dir"))
    samples = golden_samples if golden_samples is not None else int(cfg.get("golden_samples", 32))
    return export(model, data, out_dir if out_dir is not None else Path(checkpoint).parent, samples)
