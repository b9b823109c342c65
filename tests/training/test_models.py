"""Model zoo: every model x bit width builds, runs, exports, and its QONNX equals PyTorch on real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantLinear

from bnnflow.errors import BnnflowError
from bnnflow.training.data import Dataset
from bnnflow.training.export import MODEL_FILE, check_export, export, load_onnx
from bnnflow.training.models import (
    ZOO,
    ZOO_BITS,
    build_model,
    load_model_config,
    randomize_batchnorm,
    zoo_spec,
)

pytestmark = pytest.mark.unit  # the unit tier: `make test-fast` (LFC and CNV exports: test_models_large.py)

SHAPES = {"tfc": (1, 28, 28), "sfc": (1, 28, 28), "lfc": (1, 28, 28), "cnv": (3, 32, 32)}
CASES = [(name, w, a) for name in ZOO for (w, a) in ZOO_BITS]


def _dataset(images: np.ndarray) -> Dataset:
    labels = np.zeros(len(images), dtype=np.int64)
    return Dataset("real", images, labels, images, labels)


@pytest.mark.parametrize(("name", "wbits", "abits"), CASES)
def test_zoo_forward_shape(name: str, wbits: int, abits: int) -> None:
    model = build_model(zoo_spec(name, wbits, abits, SHAPES[name])).eval()
    out = model(model.example_input(3))
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()


def test_zoo_layer_structure() -> None:
    cnv = build_model(zoo_spec("cnv", 1, 1, (3, 32, 32)))
    convs = [m for m in cnv.modules() if isinstance(m, QuantConv2d)]
    fcs = [m for m in cnv.modules() if isinstance(m, QuantLinear)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256]
    assert all(c.kernel_size == (3, 3) and c.padding == (0, 0) for c in convs)
    assert [(f.in_features, f.out_features) for f in fcs] == [(256, 512), (512, 512), (512, 10)]
    lfc = build_model(zoo_spec("lfc", 1, 1, (1, 28, 28)))
    assert [m.out_features for m in lfc.modules() if isinstance(m, QuantLinear)] == [1024] * 4 + [10]


@pytest.mark.parametrize(("name", "wbits", "abits"), [c for c in CASES if c[0] in ("tfc", "sfc")])
def test_zoo_export_equals_pytorch(name: str, wbits: int, abits: int, real_images, tmp_path: Path) -> None:
    check_zoo_export(name, wbits, abits, real_images, tmp_path)


def check_zoo_export(name: str, wbits: int, abits: int, real_images, tmp_path: Path) -> None:
    model = build_model(zoo_spec(name, wbits, abits, SHAPES[name]))
    randomize_batchnorm(model, seed=7)
    model.eval()
    samples = 3 if name == "cnv" else 8
    result = export(model, _dataset(real_images(samples, SHAPES[name])), tmp_path, golden_samples=samples)
    assert result.check.samples == samples
    assert result.check.mismatches == 0
    assert result.check.max_abs_diff <= 1e-5
    golden = np.load(result.golden_path)
    assert golden["inputs"].shape[0] == samples
    assert set(np.unique(golden["inputs"])) <= set(range(256))
    # The graph holds real quantizers, and the exported input is annotated as 8-bit pixels.
    wrapper = load_onnx(result.model_path)
    ops = {n.op_type for n in wrapper.graph.node}
    assert ("BipolarQuant" in ops) if (wbits, abits) == (1, 1) else ("Quant" in ops)
    assert wrapper.get_tensor_datatype(wrapper.graph.input[0].name).name == "UINT8"


def test_export_detects_a_wrong_graph(real_images, tmp_path: Path) -> None:
    """The self-check is not a formality: a graph that differs from the golden outputs is reported."""
    model = build_model(zoo_spec("tfc", 1, 1, (1, 28, 28)))
    randomize_batchnorm(model, seed=3)
    model.eval()
    result = export(model, _dataset(real_images(10, (1, 28, 28))), tmp_path, golden_samples=10)
    golden = dict(np.load(result.golden_path))
    golden["outputs"] = golden["outputs"].copy()
    golden["outputs"][7, 5] += 0.01  # past the frames on which the batched execution is checked
    check = check_export(tmp_path / MODEL_FILE, golden)
    assert check.mismatches == 1
    assert check.max_abs_diff == pytest.approx(0.01, rel=1e-3)


def test_quantizer_ties_are_found_on_every_frame(real_images, tmp_path: Path) -> None:
    """A pixel of 127.5 centres to exactly 0, the binarizing input quantizer's boundary: those frames, and only
    those, are flagged, also past the first frames (the batched execution's check). The input is declared float
    for it (an 8-bit pixel cannot be 127.5)."""
    from qonnx.core.datatype import DataType

    from bnnflow.training.export import with_quantizer_ties

    model = build_model(zoo_spec("tfc", 1, 1, (1, 28, 28)))
    randomize_batchnorm(model, seed=3)
    export(model.eval(), _dataset(real_images(2, (1, 28, 28))), tmp_path, golden_samples=2)
    wrapper = load_onnx(tmp_path / MODEL_FILE)
    wrapper.set_tensor_datatype(wrapper.graph.input[0].name, DataType["FLOAT32"])
    wrapper.save(str(tmp_path / "float_in.onnx"))
    x = real_images(12, (1, 28, 28)).reshape(12, -1).astype(np.float32)
    x[[1, 6, 9], 300] = 127.5
    flags = with_quantizer_ties(tmp_path / "float_in.onnx", {"inputs": x, "outputs": x[:, :10]})["quantizer_ties"]
    assert flags.tolist() == [i in (1, 6, 9) for i in range(12)]


def test_export_is_deterministic(real_images, tmp_path: Path) -> None:
    images = _dataset(real_images(4, (1, 28, 28)))
    digests = []
    for sub in ("a", "b"):
        torch.manual_seed(5)
        model = build_model(zoo_spec("tfc", 2, 2, (1, 28, 28)))
        randomize_batchnorm(model, seed=5)
        result = export(model.eval(), images, tmp_path / sub, golden_samples=4)
        digests.append((result.model_path.read_bytes(), result.golden_path.read_bytes()))
    assert digests[0] == digests[1]


def test_user_models_from_config(real_images, tmp_path: Path) -> None:
    mlp = tmp_path / "mlp.yaml"
    mlp.write_text("name: tiny\nwbits: 2\nabits: 2\nfc: [32, 16]\n")
    cnn = tmp_path / "cnn.yaml"
    cnn.write_text(
        "name: small-cnn\nwbits: 1\nabits: 1\nconv:\n  - {channels: 8, kernel: 3, pool: true}\n"
        "  - {channels: 16, kernel: 3}\nfc: [32]\n"
    )
    for path, shape in ((mlp, (1, 28, 28)), (cnn, (1, 28, 28))):
        spec = load_model_config(path, shape)
        model = build_model(spec)
        randomize_batchnorm(model, seed=1)
        result = export(model.eval(), _dataset(real_images(4, shape)), tmp_path / spec.name, golden_samples=4)
        assert result.check.mismatches == 0
    assert load_model_config(cnn, (1, 28, 28)).in_bits == 8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fc: [0]\n", "positive"),
        ("wbits: 9\nfc: [8]\n", "wbits=9"),
        ("colour: red\n", "unknown keys"),
        ("conv:\n  - {channels: 4, kernel: 9}\n", "too small"),
        ("- 1\n- 2\n", "must be a mapping of option: value"),
    ],
)
def test_bad_model_configs(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BnnflowError, match=message):
        load_model_config(path, (1, 8, 8))


def test_unknown_model_and_bits() -> None:
    with pytest.raises(BnnflowError, match="unknown model 'resnet'"):
        zoo_spec("resnet", 1, 1, (1, 28, 28))
    with pytest.raises(BnnflowError, match="unsupported bit widths w2a1"):
        zoo_spec("tfc", 2, 1, (1, 28, 28))
    with pytest.raises(BnnflowError, match="too small"):
        zoo_spec("cnv", 1, 1, (1, 8, 8))
