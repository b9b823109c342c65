"""Bring your own network: Brevitas networks that bnnflow did not train, exported from float inputs as their users
export them, go through build and RTL simulation with every output element equal to FINN's execution and the
whole path (host part + RTL) equal to PyTorch; or they are refused by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.errors import BnnflowError
from bnnflow.hw.generate import load_build_design, write_rtl
from bnnflow.sim.harness import SimConfig, simulate
from tests.byon import Act, Conv, Dense, Net, bnn_pynq, build_net, export_net, inputs_for

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]

# A parallel folding per bnn_pynq network (cycles per frame), beside the fully folded one (None). The default run
# takes TFC fully folded at every bit width and SFC-w1a1 folded in parallel; `make test-slow` the other 16.
PARALLEL = {"tfc": 1000, "sfc": 4000, "lfc": 40000, "cnv": 400000}
BNN_PYNQ = [
    pytest.param(f"{net}_{bits}", fold, id=f"{net}_{bits}-{fold or 'folded'}",
                 marks=[] if (net == "tfc" and fold is None) or (net, bits, fold) == ("sfc", "1w1a", PARALLEL["sfc"])
                 else [pytest.mark.slow])
    for net in ("tfc", "sfc", "lfc", "cnv")
    for bits in (("1w1a", "1w2a", "2w2a") if net != "lfc" else ("1w1a", "1w2a"))
    for fold in (None, PARALLEL[net])
]  # fmt: skip


def build_and_simulate(src: Path, out: Path, cycles: int | None = None, **cfg: object) -> object:
    build(src / "model.onnx", BuildConfig(output_dir=out, target_cycles_per_frame=cycles, verify_samples=4, **cfg))
    write_rtl(out)
    return simulate(SimConfig(build_dir=out, cppsim=False))


def assert_exact(report: object) -> None:
    assert report.mismatches_vs_finn == 0, "RTL differs from FINN's execution"
    assert report.reference == "batched", report.reference
    vs = report.vs_pytorch
    assert vs is not None and vs.ok, vs
    assert vs.samples == report.frames


@pytest.fixture(scope="module")
def pynq_exports(tmp_path_factory):
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            samples = 3 if name.startswith("cnv") else 5
            cache[name] = bnn_pynq(name, tmp_path_factory.mktemp(name), samples=samples)
        return cache[name]

    return get


@pytest.mark.parametrize(("name", "fold"), BNN_PYNQ)
def test_bnn_pynq_from_float_input(pynq_exports, tmp_path, name, fold) -> None:
    """FINN's own end-to-end networks as exported from float images: the input quantizer runs on the host."""
    report = build_and_simulate(pynq_exports(name), tmp_path, fold)
    assert_exact(report)
    assert report.measured_ii is not None and abs(report.measured_ii - report.expected_ii) <= 0.05 * report.expected_ii


def test_declared_uint8_input_moves_the_quantizer_into_hardware(pynq_exports, tmp_path) -> None:
    """--input-datatype UINT8 --input-scale 255: the accelerator takes pixels, its first layer thresholds them."""
    import json

    report = build_and_simulate(pynq_exports("tfc_1w1a"), tmp_path, 1000, input_datatype="UINT8", input_scale=255)
    assert_exact(report)
    design = json.loads((tmp_path / "rtl" / "manifest.json").read_text())
    assert design["layers"][0]["module"] == "bnn_thresholding"
    assert design["input"]["bits"] == 8 and not design["input"]["signed"]


def test_input_scale_that_does_not_fit_the_data_is_refused(pynq_exports, tmp_path) -> None:
    with pytest.raises(BnnflowError, match=r"times input_scale 100 is not an integer"):
        build(pynq_exports("tfc_1w1a") / "model.onnx",
              BuildConfig(output_dir=tmp_path, input_datatype="UINT8", input_scale=100))  # fmt: skip


CYBERSEC = Net((593,), None, dense=tuple(Dense(64, bias=True, act=Act("relu", 2)) for _ in range(3)),
               classes=1, wbits=2, out_bias=True, centre=False)  # fmt: skip


@pytest.mark.parametrize("declared", [True, False], ids=["bipolar-input", "float-input"])
def test_cybersecurity_mlp(tmp_path, declared) -> None:
    """FINN's cybersecurity tutorial network: 593 bipolar inputs, 3 x 64 with bias, BatchNorm and 2-bit QuantReLU,
    2-bit weights, one output (no label selection: the float score is compared)."""
    import numpy as np

    from bnnflow.training.export import export_module

    model = build_net(CYBERSEC, seed=5)
    x = np.where(np.random.default_rng(5).random((5, 593)) < 0.5, -1.0, 1.0).astype(np.float32)
    src = export_module(model, x, tmp_path / "src").model_path.parent
    extra = {"input_datatype": "BIPOLAR"} if declared else {}
    report = build_and_simulate(src, tmp_path / "b", 2000, **extra)
    assert_exact(report)
    assert report.vs_pytorch.kind == "values" and report.vs_pytorch.elements == 5


KINDS = {
    "relu-bias-perchannel": Net((1, 7, 7), Act("relu", 2), dense=(Dense(13, bias=True, act=Act("relu", 3)),
                                Dense(9, act=Act("hardtanh", 2))), classes=5, wbits=2, per_channel=True, out_bias=True),
    "bipolar-w1": Net((20,), Act("identity", 1), dense=(Dense(17, act=Act("identity", 1)),), classes=4, wbits=1),
    "unsigned-8bit-hardtanh1": Net((11,), Act("identity", 8, signed=False),
                                   dense=(Dense(6, bn=False, act=Act("hardtanh", 1)), Dense(7, act=Act("relu", 2))),
                                   classes=3, wbits=3),
    "cnn-pad-stride-pool3s2": Net((2, 9, 9), Act("identity", 4),
                                  convs=(Conv(5, 3, 1, 1, pool=(3, 2), bias=True, act=Act("relu", 2)),
                                         Conv(6, 3, 2, 1, act=Act("identity", 3))),
                                  dense=(Dense(7, act=Act("hardtanh", 2)),), classes=3, wbits=3),
    "int8-hidden-w6-perchannel": Net((10,), Act("hardtanh", 8), dense=(Dense(5, act=Act("identity", 8)),
                                     Dense(6, bias=True, act=Act("relu", 5))), classes=3, wbits=6, per_channel=True),
    "cnn-uint8-w8-stride2-pool2s1": Net((3, 7, 7), Act("identity", 8, signed=False), classes=4, wbits=8, centre=False,
                                        convs=(Conv(4, 3, 2, 1, act=Act("relu", 8), pool=(2, 1)),)),
    "cnn-pool-before-bn-and-act": Net((1, 8, 8), Act("identity", 4), classes=3, wbits=2,
                                      convs=(Conv(4, 3, pool=(2, 2), pool_first=True, act=Act("relu", 2)),)),
    "cnn-bipolar-nopad": Net((3, 8, 8), Act("hardtanh", 1), convs=(Conv(6, 2, 2, 0, bn=False,
                             act=Act("identity", 1)),), classes=2, wbits=1, per_channel=False, out_bias=True),
    "dw-pad-stride-avg3s2-gap": Net((3, 11, 11), Act("identity", 4), classes=4, wbits=3, per_channel=True,
                                    convs=(Conv(5, 3, act=Act("relu", 3)),
                                           Conv(5, 3, 2, 1, pool=(3, 2), pool_kind="avg", depthwise=True,
                                                act=Act("identity", 4))), global_pool="adaptive"),
    "dw-bipolar-xnor-trunc2": Net((4, 9, 9), Act("identity", 1), classes=3, wbits=1,
                                  convs=(Conv(4, 3, depthwise=True, act=Act("relu", 2), pool=(2, 2),
                                              pool_kind="trunc"), Conv(6, 1, act=Act("hardtanh", 1)))),
    "cnn1d-dw-pool": Net((2, 20), Act("identity", 4), classes=5, wbits=4, dense=(Dense(9, act=Act("relu", 3)),),
                         convs=(Conv(6, 3, 1, 1, pool=(3, 2), pool_kind="avg", act=Act("relu", 4)),
                                Conv(6, 3, 2, 1, depthwise=True, act=Act("relu", 2)))),
}  # fmt: skip


def test_weights_of_minus_one_and_zero_are_not_bipolar(tmp_path) -> None:
    """This network's first-layer 2-bit weights come out as -1 and 0 only, which FINN's MinimizeWeightBitWidth
    annotates BIPOLAR; the RTL then stored every 0 as -1 (found by the random networks)."""
    net = Net((3,), Act("relu", 2), classes=2, wbits=2, dense=(Dense(4, bias=True, bn=False, act=Act("identity", 1)),
              Dense(17, bn=False, act=Act("identity", 2, signed=False))))  # fmt: skip
    src = export_net(net, tmp_path / "src", samples=4, seed=2)
    assert_exact(build_and_simulate(src, tmp_path / "b", 500))


@pytest.mark.parametrize("kind", list(KINDS))
def test_network_kinds(tmp_path, kind) -> None:
    src = export_net(KINDS[kind], tmp_path / "src", samples=5, seed=1)
    assert_exact(build_and_simulate(src, tmp_path / "b", 300))


@pytest.mark.parametrize("kind", ["cnn-pad-stride-pool3s2", "relu-bias-perchannel", "cnn-uint8-w8-stride2-pool2s1"])
def test_batched_reference_equals_finns_per_frame_execution(tmp_path, kind) -> None:
    """The batched reference (dataflow/batched.py) against FINN's and qonnx' own one-frame-at-a-time execution,
    every element of 37 frames (more than one batching check, several chunks), host parts included."""
    from bnnflow import artifacts
    from bnnflow.artifacts import execute, load_onnx
    from bnnflow.dataflow import batched
    from bnnflow.dataflow.host import HostGraphs
    from bnnflow.dataflow.verify import execute_accelerator

    net = KINDS[kind]
    src = export_net(net, tmp_path / "src", samples=3, seed=2)
    build(src / "model.onnx", BuildConfig(output_dir=tmp_path / "b", target_cycles_per_frame=300, verify_samples=2))
    model = load_onnx(tmp_path / "b" / "intermediate" / "estimate.onnx")
    host = HostGraphs.of_model(model)
    x = inputs_for(net, 37, seed=5)
    assert host.before is not None
    accel_in = host.accelerator_inputs(x)
    per_frame_in = execute(host.before, x).reshape(accel_in.shape)
    assert np.array_equal(accel_in, per_frame_in)
    out, how = batched.execute_accelerator_batched(model, accel_in)
    assert how == "batched"
    expected = execute_accelerator(model, accel_in)
    assert out.shape == expected.shape == (37, expected.shape[1])
    assert np.array_equal(out, expected)
    artifacts.CHUNK, chunk = 5, artifacts.CHUNK  # many chunks, the last one short
    try:
        assert np.array_equal(batched.execute_accelerator_batched(model, accel_in)[0], expected)
    finally:
        artifacts.CHUNK = chunk
    # A batched path that computed something else is caught on the first frames and not used.
    real = batched._run_accelerator_chunk
    batched._run_accelerator_chunk = lambda m, frames: real(m, frames) + 1
    try:
        out2, how2 = batched.execute_accelerator_batched(model, accel_in)
    finally:
        batched._run_accelerator_chunk = real
    assert how2 == "per frame: batched and per-frame results differ"
    assert np.array_equal(out2, expected)
    if host.after is not None:
        assert np.array_equal(host.outputs(out), execute(host.after, out))


def test_brevitas_one_bit_unsigned_export_is_refused(tmp_path) -> None:
    """Brevitas writes QuantReLU(bit_width=1) as a BipolarQuant: the export check catches it and says why."""
    net = Net((11,), Act("identity", 2), dense=(Dense(7, act=Act("relu", 1)),), classes=3, wbits=2)
    with pytest.raises(
        BnnflowError, match=r"does not compute what the network does: Brevitas exports the 1-bit unsigned"
    ):
        export_net(net, tmp_path, samples=5, seed=1)


def test_copied_build_directory_still_simulates(tmp_path) -> None:
    src = export_net(KINDS["cnn-pad-stride-pool3s2"], tmp_path / "src", samples=3)
    build(src / "model.onnx", BuildConfig(output_dir=tmp_path / "b", verify_samples=2))
    write_rtl(tmp_path / "b")
    shutil.copytree(tmp_path / "b", tmp_path / "moved")
    shutil.rmtree(tmp_path / "b")
    shutil.rmtree(tmp_path / "src")
    assert_exact(simulate(SimConfig(build_dir=tmp_path / "moved", cppsim=False)))


# ------------------------------------------------------------------------------------------ random networks
@st.composite
def activations(draw: st.DrawFn) -> Act:
    """Every kind at 1 to 4 bits; 1-bit only where signed (bipolar): Brevitas exports a 1-bit unsigned
    quantizer as bipolar (see test_brevitas_one_bit_unsigned_export_is_refused)."""
    kind = draw(st.sampled_from(["identity", "relu", "hardtanh"]))
    signed = kind == "hardtanh" or (kind == "identity" and draw(st.booleans()))
    return Act(kind, draw(st.integers(1 if signed else 2, 4)), signed)


ACTS = activations()


@st.composite
def networks(draw: st.DrawFn) -> Net:
    """Random valid networks: MLPs, 2D and 1D CNNs, odd widths, 1 to 4 bits, every activation kind, bias or not,
    padding (never in front of bipolar data, which a zero pad cannot represent), stride, depthwise convolutions,
    max-pools before or after BatchNorm and the activation, average pools (float then requantized, or Brevitas'
    TruncAvgPool2d over power-of-two windows) and global average pools."""
    in_act = draw(ACTS)
    wbits = draw(st.integers(1, 4))
    dense = tuple(
        Dense(draw(st.integers(3, 24)), bias=draw(st.booleans()), bn=draw(st.booleans()), act=draw(ACTS))
        for _ in range(draw(st.integers(0, 2)))
    )
    common = {"wbits": wbits, "per_channel": draw(st.booleans()), "out_bias": draw(st.booleans()),
              "classes": draw(st.integers(2, 7)), "centre": draw(st.booleans())}  # fmt: skip
    shape = draw(st.sampled_from(["mlp", "cnn", "cnn", "cnn1d"]))
    if shape == "mlp":
        return Net((draw(st.integers(3, 40)),), in_act, dense=dense, **common)
    one_d = shape == "cnn1d"
    size = in_size = draw(st.integers(8, 24)) if one_d else draw(st.integers(6, 11))
    channels = prev_channels = draw(st.integers(1, 3))
    convs, prev = [], in_act
    for _ in range(draw(st.integers(1, 3))):
        kernel = draw(st.integers(1, 3))
        pad = 0 if prev.bipolar else draw(st.integers(0, 1))
        stride = draw(st.integers(1, 2))
        out = (size + 2 * pad - kernel) // stride + 1
        if out < 2:
            break
        act = draw(ACTS)
        depthwise = draw(st.integers(0, 2)) == 0
        width = prev_channels if depthwise else draw(st.integers(2, 9))
        pool, kind = None, "max"
        if out >= 4 and draw(st.booleans()):
            kinds = ["max"] if act.bipolar else ["max", "avg"] if one_d else ["max", "avg", "trunc"]
            kind = draw(st.sampled_from(kinds))
            k = 2 if kind == "trunc" else draw(st.integers(2, 3))
            pool = (k, draw(st.integers(1, k)))
            out = (out - pool[0]) // pool[1] + 1
        pool_first = pool is not None and kind == "max" and draw(st.booleans())
        convs.append(Conv(width, kernel, stride, pad, pool, draw(st.booleans()), draw(st.booleans()), act,
                          pool_first=pool_first, depthwise=depthwise, pool_kind=kind))  # fmt: skip
        size, prev, prev_channels = out, act, width
    global_pool = None
    if not one_d and convs and not prev.bipolar and draw(st.booleans()):
        global_pool = draw(st.sampled_from(["adaptive", "trunc"] if size in (1, 2, 4) else ["adaptive"]))
    in_shape = (channels, in_size) if one_d else (channels, in_size, in_size)
    return Net(in_shape, in_act, convs=tuple(convs), dense=dense, global_pool=global_pool, **common)


RANDOM = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip


@pytest.mark.slow
@settings(RANDOM)
@given(net=networks())
def test_random_brevitas_networks(tmp_path_factory, net) -> None:
    """At least 50 random networks through export, build and RTL simulation, every element compared."""
    tmp = tmp_path_factory.mktemp("net")
    src = export_net(net, tmp / "src", samples=4, seed=2)
    report = build_and_simulate(src, tmp / "b", 500)
    assert report.mismatches_vs_finn == 0, net.describe()
    assert report.vs_pytorch is not None and report.vs_pytorch.ok, (net.describe(), report.vs_pytorch)


def test_torchscript_exporter_with_dynamic_batch(tmp_path) -> None:
    """Another exporter of the same kind: Brevitas' QONNX export through torch's TorchScript exporter, with a
    dynamic batch dimension, golden data written with `bnnflow golden`, then build and simulation."""
    import numpy as np
    import torch
    from brevitas.export import export_qonnx

    from bnnflow.cli import main

    net = Net((12,), Act("identity", 4), dense=(Dense(10, bias=True, act=Act("relu", 3)),), classes=4, wbits=3)
    model = build_net(net, seed=4)
    x = inputs_for(net, 5, seed=4)
    src = tmp_path / "src"
    src.mkdir()
    export_qonnx(model, args=torch.from_numpy(x[:1]), export_path=str(src / "model.onnx"), dynamo=False,
                 input_names=["inp"], dynamic_axes={"inp": {0: "batch"}})  # fmt: skip
    np.save(tmp_path / "x.npy", x)
    with torch.no_grad():
        np.save(tmp_path / "y.npy", model(torch.from_numpy(x)).numpy())
    args = [
        "golden",
        str(src / "model.onnx"),
        "--inputs",
        str(tmp_path / "x.npy"),
        "--outputs",
        str(tmp_path / "y.npy"),
    ]
    assert main(args) == 0
    assert_exact(build_and_simulate(src, tmp_path / "b", 200))


@pytest.mark.slow  # the default run checks the same on TFC with dense and sparse MVAUs (tests/test_sweep.py)
@pytest.mark.parametrize("kind", ["cnn-pad-stride-pool3s2", "relu-bias-perchannel"])
def test_each_layer_alone_takes_finns_estimated_cycles(tmp_path, kind) -> None:
    """`--layer-timing`: every layer (padding, sliding window, pooling, MVAU, width converters, label select)
    measured alone in Verilator takes the cycles per frame FINN estimates for it."""
    src = export_net(KINDS[kind], tmp_path / "src", samples=3, seed=1)
    out = tmp_path / "b"
    build(src / "model.onnx", BuildConfig(output_dir=out, target_cycles_per_frame=300, verify_samples=2))
    write_rtl(out)
    report = simulate(SimConfig(build_dir=out, cppsim=False, layer_timing=True))
    assert_exact(report)
    layers = report.layer_cycles
    assert [layer["name"] for layer in layers] == [layer.name for layer in load_build_design(out).layers]
    assert all(layer["measured_cycles"] == layer["expected_cycles"] for layer in layers), layers
    assert report.measured_ii == max(layer["measured_cycles"] for layer in layers)
