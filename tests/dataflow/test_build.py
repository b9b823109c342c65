"""Dataflow builds: every zoo model reaches the folded graph, verified against PyTorch after every step."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from bnnflow.dataflow import steps as steps_module
from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.dataflow.steps import step_names
from bnnflow.errors import BnnflowError
from bnnflow.training.models import ZOO_BITS

# A small folding per model: a cycle budget SetFolding can reach with modest PE/SIMD.
CYCLES = {"tfc": 1000, "sfc": 4000, "lfc": 40000, "cnv": 400000}
CASES = [
    pytest.param(
        name, w, a, marks=[pytest.mark.slow] if name == "lfc" or (name in ("cnv", "sfc") and (w, a) != (1, 1)) else []
    )
    for name in CYCLES
    for (w, a) in ZOO_BITS
]


def _cfg(out: Path, **kw) -> BuildConfig:
    return BuildConfig(output_dir=out, verify_samples=3).replace(**kw)


@pytest.mark.parametrize(("name", "wbits", "abits"), CASES)
def test_zoo_builds_and_every_step_equals_pytorch(name, wbits, abits, exported, tmp_path: Path) -> None:
    samples = 3 if name == "cnv" else 16  # MLP execution is cheap: check more golden inputs
    src = exported(name, wbits, abits, samples)
    cfg = _cfg(tmp_path, target_cycles_per_frame=CYCLES[name], verify_samples=samples)
    result = build(src / "model.onnx", cfg)
    assert result.steps == step_names()
    assert [c.step for c in result.checks] == step_names()
    assert all(c.ok and c.samples == samples for c in result.checks)
    # Before label selection the graphs still compute the logits themselves, every element compared.
    first = result.checks[0].comparison
    assert first.kind == "values" and first.elements == samples * 10 and first.max_abs_diff <= 1e-4
    assert result.checks[-1].comparison.kind == "label"
    for step in step_names():
        assert (tmp_path / "intermediate" / f"{step}.onnx").is_file()
    est = result.estimates
    assert est is not None and est["initiation_interval_cycles"] <= CYCLES[name]
    ops = {layer["op_type"] for layer in est["layers"]}
    assert {"LabelSelect_hls"} <= ops and any(op.startswith("MVAU") for op in ops)
    if name == "cnv":
        assert any(op.startswith("ConvolutionInputGenerator") for op in ops)
        assert any(op.startswith(("Pool", "StreamingMaxPool")) for op in ops)
    assert est["estimated_fps"] == pytest.approx(1e8 / est["initiation_interval_cycles"])
    verification = json.loads((tmp_path / "verification.json").read_text())
    assert verification["first_divergent_step"] is None


def test_unfolded_build_is_fully_folded(exported, tmp_path: Path) -> None:
    result = build(exported("tfc", 1, 1) / "model.onnx", _cfg(tmp_path))
    mvaus = [layer for layer in result.estimates["layers"] if layer["op_type"].startswith("MVAU")]
    assert [(m["PE"], m["SIMD"]) for m in mvaus] == [(1, 1)] * 4
    # Fully folded: a layer takes MH * MW cycles per frame; the first one is 784 x 64.
    assert mvaus[0]["cycles"] == 784 * 64
    assert result.estimates["initiation_interval_cycles"] == 784 * 64


def test_folding_json_replays_to_the_same_build(exported, tmp_path: Path) -> None:
    model = exported("tfc", 1, 1) / "model.onnx"
    first = build(model, _cfg(tmp_path / "auto", target_cycles_per_frame=500))
    folding = tmp_path / "auto" / "folding.json"
    replay = build(model, _cfg(tmp_path / "replay", folding_config_file=folding))
    assert (tmp_path / "replay" / "folding.json").read_bytes() == folding.read_bytes()
    assert replay.estimates == first.estimates
    assert first.estimates["initiation_interval_cycles"] <= 500


def test_illegal_folding_names_layer_and_legal_values(exported, tmp_path: Path) -> None:
    folding = tmp_path / "fold.json"
    folding.write_text(json.dumps({"Defaults": {}, "MVAU_hls_1": {"PE": 7, "SIMD": 8}}))
    with pytest.raises(BnnflowError) as err:
        build(exported("tfc", 1, 1) / "model.onnx", _cfg(tmp_path / "b", folding_config_file=folding))
    assert str(err.value) == (
        "illegal folding for layer 'MVAU_hls_1' (MVAU_hls): PE=7 does not divide MH=64; "
        "legal PE values: 1, 2, 4, 8, 16, 32, 64"
    )
    folding.write_text(json.dumps({"MVAU_hls_9": {"PE": 1}}))
    with pytest.raises(BnnflowError, match=r"names unknown layer\(s\) MVAU_hls_9; the layers are: "):
        build(exported("tfc", 1, 1) / "model.onnx", _cfg(tmp_path / "c", folding_config_file=folding))


def test_start_and_stop_steps_resume_to_the_same_result(exported, tmp_path: Path) -> None:
    model = exported("tfc", 1, 1) / "model.onnx"
    full = build(model, _cfg(tmp_path / "full", target_cycles_per_frame=800))
    part = build(model, _cfg(tmp_path / "part", target_cycles_per_frame=800, stop_step="streamline"))
    assert part.steps == ["qonnx_to_finn", "tidy_up", "label_select", "streamline"]
    assert part.estimates is None
    assert not (tmp_path / "part" / "intermediate" / "convert_to_hw.onnx").exists()
    rest = build(model, _cfg(tmp_path / "part", target_cycles_per_frame=800, start_step="convert_to_hw"))
    assert rest.steps[0] == "convert_to_hw" and rest.steps[-1] == "estimate"
    assert rest.estimates == full.estimates
    with pytest.raises(BnnflowError, match="is missing; run the earlier steps first"):
        build(model, _cfg(tmp_path / "empty", start_step="fold"))
    with pytest.raises(BnnflowError, match="unknown start_step 'optimise'; the steps are: qonnx_to_finn"):
        build(model, _cfg(tmp_path / "x", start_step="optimise"))


def test_build_is_deterministic(exported, tmp_path: Path) -> None:
    model = exported("tfc", 1, 1) / "model.onnx"
    for sub in ("a", "b"):
        build(model, _cfg(tmp_path / sub, target_cycles_per_frame=700))
    for name in ("folding.json", "estimates.json", "estimates.txt", "verification.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for step in ("qonnx_to_finn", "streamline", "convert_to_hw"):
        a = (tmp_path / "a" / "intermediate" / f"{step}.onnx").read_bytes()
        assert a == (tmp_path / "b" / "intermediate" / f"{step}.onnx").read_bytes(), step


def test_verification_reports_the_first_divergent_step(exported, tmp_path: Path, monkeypatch) -> None:
    """Corrupt the weights in convert_to_hw: the build stops there and says so."""
    original = steps_module.STEPS["convert_to_hw"]

    def corrupting(model, cfg):
        model = original(model, cfg)
        last = [n for n in model.graph.node if n.op_type.startswith("MVAU")][-1]
        w = model.get_initializer(last.input[1])
        model.set_initializer(last.input[1], np.roll(w, 1, axis=1))  # every class takes its neighbour's score
        return model

    monkeypatch.setitem(steps_module.STEPS, "convert_to_hw", corrupting)
    with pytest.raises(
        BnnflowError, match=r"step 'convert_to_hw' diverged from PyTorch on 4 golden inputs: top-1 diverges on \d+"
    ):
        build(exported("tfc", 1, 1) / "model.onnx", _cfg(tmp_path, verify_samples=4))
    report = json.loads((tmp_path / "verification.json").read_text())
    assert report["first_divergent_step"] == "convert_to_hw"
    assert [s["ok"] for s in report["steps"]] == [True] * 4 + [False]


def test_unmappable_op_names_node_and_type(exported, tmp_path: Path) -> None:
    """A Sigmoid between two layers cannot become hardware: the error names it."""
    model = onnx.load(str(exported("tfc", 1, 1) / "model.onnx"))
    graph = model.graph
    bn = next(n for n in graph.node if n.op_type == "BatchNormalization")
    old = bn.output[0]
    bn.output[0] = old + "_pre_sigmoid"
    sigmoid = onnx.helper.make_node("Sigmoid", [bn.output[0]], [old], name="MySigmoid")
    graph.node.insert(list(graph.node).index(bn) + 1, sigmoid)
    path = tmp_path / "sigmoid.onnx"
    onnx.save(model, str(path))
    with pytest.raises(BnnflowError) as err:
        build(path, _cfg(tmp_path / "b", verify=False))
    assert "(op type Sigmoid, 'MySigmoid' in the exported model) is left between hardware layers" in str(err.value)


def test_malformed_onnx_and_missing_golden(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf")
    with pytest.raises(BnnflowError, match=r"is not a valid ONNX model"):
        build(bad, _cfg(tmp_path / "b", verify=False))
    with pytest.raises(BnnflowError, match=r"ONNX model .* not found"):
        build(tmp_path / "none.onnx", _cfg(tmp_path / "c", verify=False))


def test_finn_environment_stays_inside_the_build(exported, tmp_path: Path) -> None:
    before = os.environ.get("FINN_BUILD_DIR")
    build(exported("tfc", 1, 1) / "model.onnx", _cfg(tmp_path, stop_step="create_dataflow_partition"))
    assert os.environ.get("FINN_BUILD_DIR") == before
    assert (tmp_path / "build.log").read_text().startswith("== step qonnx_to_finn")


def test_narrow_range_activations_keep_their_bias(exported, tmp_path: Path) -> None:
    """Binary-weight layers with 2-bit {-1, 0, +1} outputs: FINN's binary MVAU inference would set ActVal to
    the INT2 minimum (-2); the absorbed thresholds' bias is -1. And a bipolar input quantizer in front of
    2-bit weights becomes a Thresholding layer with a BIPOLAR output."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    build(exported("tfc", 1, 2) / "model.onnx", _cfg(tmp_path / "a", stop_step="convert_to_hw", verify=False))
    model = ModelWrapper(str(tmp_path / "a" / "intermediate" / "convert_to_hw.onnx"))
    first = getCustomOp(model.get_nodes_by_op_type("MVAU")[0])
    assert first.get_nodeattr("binaryXnorMode") == 1 and first.get_nodeattr("ActVal") == -1
    build(exported("tfc", 2, 2) / "model.onnx", _cfg(tmp_path / "b", stop_step="convert_to_hw", verify=False))
    model = ModelWrapper(str(tmp_path / "b" / "intermediate" / "convert_to_hw.onnx"))
    thr = getCustomOp(model.get_nodes_by_op_type("Thresholding")[0])
    assert thr.get_nodeattr("outputDataType") == "BIPOLAR" and thr.get_nodeattr("ActVal") == 0


def _export(module, shape, out: Path) -> Path:
    import torch

    from bnnflow.training.export import export_module

    torch.manual_seed(0)
    export_module(module.eval(), torch.rand(3, *shape).numpy(), out)
    return out / "model.onnx"


def test_skip_connection_is_refused_by_node(tmp_path: Path) -> None:
    import brevitas.nn as qnn
    import torch

    class Residual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp, self.act = qnn.QuantIdentity(bit_width=4), qnn.QuantIdentity(bit_width=4)
            self.fc1 = qnn.QuantLinear(8, 8, bias=False, weight_bit_width=2)
            self.fc2 = qnn.QuantLinear(8, 3, bias=False, weight_bit_width=2)

        def forward(self, x):
            x = self.inp(x)
            return self.fc2(self.act(self.act(self.fc1(x)) + x))

    with pytest.raises(BnnflowError, match=r"\(op type Add.*\) joins 2 branches \(a residual or skip connection\)"):
        build(_export(Residual(), (8,), tmp_path / "src"), _cfg(tmp_path / "b"))


def test_layer_without_hardware_mapping_before_compute_is_refused(tmp_path: Path) -> None:
    """An average pool whose output is not quantized has no hardware layer: the build names it instead of running
    the layers after it on the host (a host part after the accelerator may scale and select, not compute)."""
    import brevitas.nn as qnn
    import torch

    net = torch.nn.Sequential(
        qnn.QuantIdentity(bit_width=4), qnn.QuantConv2d(1, 4, 3, bias=False, weight_bit_width=2),
        qnn.QuantReLU(bit_width=2), torch.nn.AvgPool2d(2), torch.nn.Flatten(),
        qnn.QuantLinear(36, 3, bias=False, weight_bit_width=2),
    )  # fmt: skip
    refused = r"\(op type AveragePool.*\) has no hardware layer .* not quantized.*TruncAvgPool2d"
    with pytest.raises(BnnflowError, match=refused):
        build(_export(net, (1, 8, 8), tmp_path / "src"), _cfg(tmp_path / "b"))


def test_conv_bias_moves_past_max_pool() -> None:
    """A constant per-channel Add before a MaxPool moves after it (max(x + b) = max(x) + b), same outputs."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from bnnflow.dataflow.transforms import MoveAddPastMaxPool

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["y"], name="bias"),
         helper.make_node("MaxPool", ["y"], ["z"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 7, 7])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, 4, 4])],
    )  # fmt: skip
    from qonnx.transformation.infer_shapes import InferShapes

    model = ModelWrapper(helper.make_model(graph))
    model.set_initializer("b", rng.standard_normal((1, 3, 1, 1)).astype(np.float32))
    model = model.transform(InferShapes())
    x = rng.standard_normal((1, 3, 7, 7)).astype(np.float32)
    before = execute_onnx(model, {"x": x})["z"]
    moved = model.transform(MoveAddPastMaxPool())
    assert [n.op_type for n in moved.graph.node] == ["MaxPool", "Add"]
    np.testing.assert_allclose(execute_onnx(moved, {"x": x})["z"], before, rtol=0, atol=1e-6)
    # A bias that varies over the pooled positions does not commute: left alone.
    model.set_initializer("b", rng.standard_normal((1, 3, 7, 7)).astype(np.float32))
    assert [n.op_type for n in model.transform(MoveAddPastMaxPool()).graph.node] == ["Add", "MaxPool"]


def test_pool_between_batchnorm_with_negative_scale_and_activation_is_refused(tmp_path: Path) -> None:
    import brevitas.nn as qnn
    import torch

    bn = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -0.5, 0.8, -1.2]))
        bn.running_mean.copy_(torch.tensor([0.3, -0.2, 0.5, 0.1]))
    net = torch.nn.Sequential(
        qnn.QuantIdentity(bit_width=4), qnn.QuantConv2d(1, 4, 3, bias=False, weight_bit_width=2), bn,
        torch.nn.MaxPool2d(2), qnn.QuantReLU(bit_width=2), torch.nn.Flatten(),
        qnn.QuantLinear(36, 3, bias=False, weight_bit_width=2),
    )  # fmt: skip
    with pytest.raises(BnnflowError, match=r"\(op type MaxPool.*\) is left between .* pool after the activation"):
        build(_export(net, (1, 8, 8), tmp_path / "src"), _cfg(tmp_path / "b"))
