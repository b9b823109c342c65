"""QONNX export with golden data, and the self-check that executes the exported graph with qonnx."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from bnnflow.artifacts import (
    GOLDEN_FILE,
    MODEL_FILE,
    BatchedRun,
    compare_outputs,
    execute_batched,
    load_onnx,
    save_golden,
    with_batch,
)
from bnnflow.errors import BnnflowError
from bnnflow.fileio import atomic_open, ensure_writable_dir
from bnnflow.training.data import Dataset, load_dataset
from bnnflow.training.models import BNN

__all__ = ["GOLDEN_FILE", "MODEL_FILE", "export", "export_checkpoint", "export_module", "golden_from_onnx"]


@dataclass(frozen=True)
class ExportCheck:
    """Result of executing the exported graph on the golden inputs."""

    samples: int
    integer_outputs: bool
    max_abs_diff: float
    mismatches: int
    near_ties: int = 0  # inputs with an activation on a quantizer's rounding boundary that PyTorch rounds otherwise

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


def write_qonnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    dest: Path,
    input_datatype: str | None = None,
    metadata: dict[str, str] | None = None,
    post: Callable[[Any], Any] | None = None,
) -> None:
    """Export `module` with Brevitas as one self-contained QONNX file (weights inline), its input annotated
    `input_datatype` where given (e.g. UINT8 for pixel inputs); `post` rewrites the cleaned-up graph."""
    from brevitas.export import export_qonnx
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    module = module.cpu().eval()
    with tempfile.TemporaryDirectory(prefix="bnnflow-export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        # The dynamo exporter prints progress lines and warns about unrelated torchvision ops.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), _quiet_torch_onnx():
            warnings.simplefilter("ignore")
            export_qonnx(module, args=example, export_path=str(raw))
        proto = onnx.load(str(raw), load_external_data=True)
    wrapper = cleanup_model(ModelWrapper(proto))
    if post is not None:
        wrapper = post(wrapper)
    if input_datatype is not None:
        wrapper.set_tensor_datatype(wrapper.graph.input[0].name, DataType[input_datatype])
    wrapper.model.producer_name = "bnnflow"
    wrapper.model.producer_version = ""
    for key, value in (metadata or {}).items():
        wrapper.set_metadata_prop(key, value)
    with atomic_open(dest) as fh:
        fh.write(wrapper.model.SerializeToString(deterministic=True))


def export_qonnx_model(model: BNN, dest: Path) -> None:
    """Write a zoo/user BNN as QONNX with its input annotated as UINT8 pixels and its spec in the metadata."""
    from bnnflow.training.prune import is_masked, masked_weights_to_qonnx, without_masks

    spec = json.dumps(model.spec.to_dict(), sort_keys=True)
    if is_masked(model):
        write_qonnx(without_masks(model), model.example_input(1), dest, "UINT8", {"bnnflow.spec": spec},
                    lambda wrapper: masked_weights_to_qonnx(wrapper, model))  # fmt: skip
    else:
        write_qonnx(model, model.example_input(1), dest, "UINT8", {"bnnflow.spec": spec})


def golden_arrays(model: BNN, data: Dataset, samples: int) -> dict[str, np.ndarray]:
    """The first `samples` test images in the exported input layout and the PyTorch outputs on them."""
    n = min(samples, len(data.test_y))
    x = model.select_inputs(data.test_x[:n].astype(np.float32))
    with torch.no_grad():
        y = model.cpu().eval()(torch.from_numpy(x)).numpy()
    return {"inputs": x, "outputs": y.astype(np.float32), "labels": data.test_y[:n].astype(np.int64)}


# An activation this close to a quantizer's rounding boundary (in units of the quantizer's step, relative to
# max(1, |value|)) is decided by float summation order: PyTorch, qonnx and integer hardware may each round it
# differently. Float32 sums of ~1000 terms err by about 1e-7 * sqrt(1000) of a term.
TIE_TOLERANCE = 2e-6


def _near_boundary(x: np.ndarray, node: Any, ctx: dict[str, np.ndarray]) -> np.ndarray:
    """Per frame (the first axis): does any element of the quantizer's input lie on a rounding boundary?"""
    from qonnx.custom_op.registry import getCustomOp

    scale = np.asarray(ctx[node.input[1]], dtype=np.float64)
    v = np.asarray(x, dtype=np.float64) / np.where(scale == 0, 1.0, scale)
    if node.op_type == "BipolarQuant":
        distance = np.abs(v)
    else:
        v = v + np.asarray(ctx[node.input[2]], dtype=np.float64)
        mode = str(getCustomOp(node).get_nodeattr("rounding_mode")).upper()
        offset = 0.5 if mode in ("ROUND", "HALF_EVEN", "HALF_UP", "HALF_DOWN") else 0.0
        distance = np.abs(v - np.floor(v) - offset)
        distance = np.minimum(distance, np.abs(1.0 - distance)) if offset == 0.0 else distance
    near = distance <= TIE_TOLERANCE * np.maximum(1.0, np.abs(v))
    return np.asarray(near.reshape(len(near), -1).any(axis=1))


def quantizer_ties(model: Any, inputs: np.ndarray) -> np.ndarray:
    """Per input: does any activation of the QONNX graph lie on a quantizer's rounding boundary?"""
    from qonnx.core.onnx_exec import execute_onnx

    quants = [n for n in model.graph.node if n.op_type in ("Quant", "BipolarQuant")
              and model.get_initializer(n.input[0]) is None]  # fmt: skip

    def flags(m: Any, x: np.ndarray) -> np.ndarray:
        iname = m.graph.input[0].name
        ctx = execute_onnx(m, {iname: np.asarray(x, np.float32).reshape(m.get_tensor_shape(iname))}, True)
        near = np.zeros(len(x), dtype=bool)
        for n in quants:
            near |= _near_boundary(ctx[n.input[0]], n, ctx)
        return near[:, None].astype(np.float32)

    def per_frame(x: np.ndarray) -> np.ndarray:
        return np.concatenate([flags(model, row[None]) for row in x]) if len(x) else np.zeros((0, 1), np.float32)

    run = BatchedRun(lambda m, x: flags(with_batch(m, len(x)), x), per_frame)
    return run(model, np.asarray(inputs)).reshape(-1) > 0


def with_quantizer_ties(model_path: Path, golden: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """golden plus `quantizer_ties`, the inputs on which an activation sits on a rounding boundary."""
    from qonnx.transformation.infer_shapes import InferShapes

    model = load_onnx(model_path).transform(InferShapes())
    return {**golden, "quantizer_ties": quantizer_ties(model, golden["inputs"])}


def check_export(model_path: Path, golden: dict[str, np.ndarray]) -> ExportCheck:
    """Execute the exported graph on the golden inputs and compare with the PyTorch outputs."""
    from qonnx.core.datatype import DataType
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    wrapper = load_onnx(model_path).transform(InferShapes()).transform(InferDataTypes())
    out_dtype = wrapper.get_tensor_datatype(wrapper.graph.output[0].name)
    integer = out_dtype is not None and out_dtype.is_integer() and out_dtype != DataType["FLOAT32"]
    actual = execute_batched(wrapper, golden["inputs"])
    cmp = compare_outputs(actual, golden["outputs"], integer, quantizer_ties=golden.get("quantizer_ties"))
    return ExportCheck(len(golden["inputs"]), integer, cmp.max_abs_diff or 0.0, cmp.mismatches + cmp.top1_divergent,
                       cmp.near_ties)  # fmt: skip


def _checked(check: ExportCheck, model_path: Path) -> ExportCheck:
    known = _known_export_bug(model_path)
    if known:
        raise BnnflowError(f"exported {model_path} does not compute what the network does: {known}")
    if not check.ok:
        raise BnnflowError(
            f"exported {model_path} disagrees with PyTorch on {check.mismatches} output elements "
            f"(max |diff| {check.max_abs_diff:.3g}): the QONNX file does not compute what the network does; "
            "please report it with the model"
        )
    return check


def _known_export_bug(model_path: Path) -> str | None:
    """What is known to make Brevitas' QONNX export differ from the PyTorch module, if the file shows it."""
    model = load_onnx(model_path)
    for node in model.get_nodes_by_op_type("BipolarQuant"):
        producer = model.find_producer(node.input[0])
        if producer is not None and producer.op_type == "Relu":
            return (
                f"Brevitas exports the 1-bit unsigned activation before '{node.name}' (a QuantReLU or unsigned "
                "quantizer with bit_width=1) as bipolar -1/+1; use bit_width >= 2 for unsigned activations"
            )
    return None


def export_module(
    module: torch.nn.Module,
    inputs: np.ndarray,
    out_dir: Path,
    input_datatype: str | None = None,
    labels: np.ndarray | None = None,
) -> ExportResult:
    """Bring your own network: export any Brevitas module to out_dir/model.onnx (QONNX) with golden.npz holding
    `inputs` (a batch, in the module's own input layout: floats as it was trained on) and its PyTorch outputs,
    and check that qonnx' execution of the file gives the same outputs."""
    out = ensure_writable_dir(out_dir)
    model_path, golden_path = out / MODEL_FILE, out / GOLDEN_FILE
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
    module = module.cpu().eval()
    with torch.no_grad():
        y = module(x).numpy().astype(np.float32)
    write_qonnx(module, x[:1], model_path, input_datatype)
    golden = {"inputs": x.numpy(), "outputs": y}
    if labels is not None:
        golden["labels"] = np.asarray(labels, dtype=np.int64)
    golden = with_quantizer_ties(model_path, golden)
    save_golden(golden_path, golden)
    return ExportResult(model_path, golden_path, _checked(check_export(model_path, golden), model_path))


def golden_from_onnx(
    model_path: Path, inputs: np.ndarray, outputs: np.ndarray | None = None, dest: Path | None = None
) -> tuple[Path, ExportCheck]:
    """golden.npz for a QONNX file exported elsewhere: `inputs`, and the outputs of qonnx' execution of the
    graph (the reference Brevitas' export guarantees), checked against `outputs` (PyTorch's) where given."""
    model = load_onnx(model_path)
    shape = model.get_tensor_shape(model.graph.input[0].name)
    per_input = int(np.prod(shape[1:])) if shape else 0
    x = np.asarray(inputs, dtype=np.float32)
    if x.ndim == 0 or x.size != len(x) * per_input:
        raise BnnflowError(f"inputs of shape {x.shape} do not fit {model_path}'s input {shape}: give a batch of them")
    x = x.reshape(len(x), *shape[1:])
    try:
        from qonnx.transformation.infer_shapes import InferShapes

        model = model.transform(InferShapes())
        reference = execute_batched(model, x).reshape(len(x), *model.get_tensor_shape(model.graph.output[0].name)[1:])
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise BnnflowError(
            f"qonnx cannot execute {model_path} ({type(exc).__name__}: {first}); export it again"
        ) from exc
    golden = {"inputs": x, "outputs": (outputs if outputs is not None else reference).astype(np.float32)}
    golden = with_quantizer_ties(model_path, golden)
    dest = Path(dest) if dest is not None else Path(model_path).parent / GOLDEN_FILE
    check = _checked(check_export(model_path, golden), model_path)
    save_golden(dest, golden)
    return dest, check


def export(model: BNN, data: Dataset, out_dir: Path, golden_samples: int = 32) -> ExportResult:
    """Write model.onnx and golden.npz into `out_dir` and verify one against the other."""
    out = ensure_writable_dir(out_dir)
    model_path, golden_path = out / MODEL_FILE, out / GOLDEN_FILE
    export_qonnx_model(model, model_path)
    golden = with_quantizer_ties(model_path, golden_arrays(model, data, golden_samples))
    save_golden(golden_path, golden)
    return ExportResult(model_path, golden_path, _checked(check_export(model_path, golden), model_path))


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
