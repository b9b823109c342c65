"""The lightweight architectures through export, build and RTL simulation: Brevitas' own MobileNet-v1, a RadioML
VGG10-shaped 1D CNN, a keyword-spotting MLP and a depthwise-separable network of this project's own design, each
at two foldings. Every output element is compared with FINN's execution and with PyTorch, and the measured II
must equal the estimate exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.hw.generate import write_rtl
from bnnflow.sim.harness import SimConfig, simulate
from tests import lightweight as lw

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]

FRAMES = 3  # the steady-state II is measured between frames 2 and 3
PIXELS = {"input_datatype": "UINT8", "input_scale": 255}  # images arrive as pixels: the first layer is hardware


def _mobilenet(width: float, res: int) -> tuple[Callable[[], object], tuple[int, ...], dict]:
    return (lambda: lw.mobilenet_v1(width, res)), (3, res, res), PIXELS


NETWORKS: dict[str, tuple[Callable[[], object], tuple[int, ...], dict]] = {
    "mobilenet-v1-w0.125-32": _mobilenet(0.125, 32),
    "mobilenet-v1-w0.25-32": _mobilenet(0.25, 32),
    "vgg10-1d-16ch-128": ((lambda: lw.vgg1d(16, 128, 3, fc=32)), (2, 128), {}),
    "vgg10-1d-64ch-1024": ((lambda: lw.vgg1d(64, 1024, 7)), (2, 1024), {}),
    "kws-mlp-w3a3": (lw.kws_mlp, (490,), {}),
    "dwnet": ((lambda: lw.dwnet()), (3, 20, 20), PIXELS),
}
# (network, cycles per frame: None = FINN's defaults, else SetFolding's target), the default tier first.
CASES = [
    pytest.param("mobilenet-v1-w0.125-32", 20000, id="mobilenet-w0.125-20k"),
    pytest.param("mobilenet-v1-w0.125-32", 4000, id="mobilenet-w0.125-4k"),
    pytest.param("vgg10-1d-16ch-128", None, id="vgg1d-small-finn-default"),
    pytest.param("vgg10-1d-16ch-128", 5000, id="vgg1d-small-5k"),
    pytest.param("kws-mlp-w3a3", None, id="kws-folded", marks=pytest.mark.slow),
    pytest.param("kws-mlp-w3a3", 500, id="kws-500"),
    pytest.param("dwnet", 2000, id="dwnet-2k"),
    pytest.param("mobilenet-v1-w0.125-32", None, id="mobilenet-w0.125-finn-default", marks=pytest.mark.slow),
    pytest.param("mobilenet-v1-w0.25-32", 5000, id="mobilenet-w0.25-5k", marks=pytest.mark.slow),
    pytest.param("vgg10-1d-64ch-1024", 100000, id="vgg10-radioml-100k", marks=pytest.mark.slow),
    pytest.param("vgg10-1d-64ch-1024", 20000, id="vgg10-radioml-20k", marks=pytest.mark.slow),
    pytest.param("dwnet", None, id="dwnet-finn-default", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Callable[[str], Path]:
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            make, shape, _ = NETWORKS[name]
            cache[name] = lw.export(make(), lw.float_images(shape, FRAMES), tmp_path_factory.mktemp(name))  # type: ignore[arg-type]
        return cache[name]

    return get


@pytest.mark.parametrize(("name", "cycles"), CASES)
def test_lightweight_network_is_bit_exact(exported, tmp_path: Path, name: str, cycles: int | None) -> None:
    src = exported(name)
    out = tmp_path / "b"
    # label_select off: the logits, every element, are compared, not only the class.
    cfg = BuildConfig(output_dir=out, target_cycles_per_frame=cycles, verify_samples=FRAMES, label_select=False,
                      **NETWORKS[name][2])  # fmt: skip
    result = build(src / "model.onnx", cfg)
    write_rtl(out)
    report = simulate(SimConfig(build_dir=out, cppsim=False))
    assert report.mismatches_vs_finn == 0
    vs = report.vs_pytorch
    assert vs is not None and vs.ok and vs.samples == report.frames == FRAMES, vs
    assert report.measured_ii == report.expected_ii, (report.measured_ii, report.expected_ii)
    # Only the input quantizer may run on the host before the accelerator, and no compute layer after it.
    before, after = result.host_nodes
    assert set(_ops(before)) <= {"Quant", "MultiThreshold", "Mul", "Add", "Sub", "Div", "Transpose", "Reshape"}, before
    assert not {"MatMul", "Conv", "Im2Col", "AveragePool", "QuantAvgPool2d"} & set(_ops(after)), after
    modules = {layer["module"] for layer in json.loads((out / "rtl" / "manifest.json").read_text())["layers"]}
    if name.startswith(("mobilenet", "dwnet")):
        assert {"bnn_vvau", "bnn_swg", "bnn_pool", "bnn_mvau"} <= modules, modules


def _ops(names: list[str]) -> list[str]:
    """The op types of host nodes given as 'name (op type)'."""
    return [n.rsplit("(", 1)[-1].rstrip(")") for n in names]
