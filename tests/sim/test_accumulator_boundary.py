"""The widest value a layer can produce, in the reference and in the RTL.

FINN annotates the raw accumulator of TFC's last layer (64 XNOR inputs, no activation: the logits go to label
select) as INT7, whose largest value is 63, while a popcount of 64 matching bits is 64. qonnx warns that such a
value "will be rounded"; FINN's python execution keeps it as it is (float), and bnnflow's RTL sizes that
accumulator from the true range (hw/layers.mvau). Here the last layer's first row is set to the exact hidden
activation pattern of one image, so its popcount is exactly 64: a 7-bit two's complement accumulator would wrap
it to -64 and lose the class."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnnflow.artifacts import load_onnx
from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.hw.generate import load_build_design, write_rtl
from bnnflow.sim.harness import SimConfig, simulate
from bnnflow.training.data import Dataset
from bnnflow.training.export import export
from bnnflow.training.models import build_model, randomize_batchnorm, zoo_spec

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]


def test_full_popcount_of_64_survives_finns_int7_annotation(real_images, tmp_path) -> None:
    torch.manual_seed(4)
    model = build_model(zoo_spec("tfc", 1, 1, (1, 28, 28)))
    randomize_batchnorm(model, seed=4)
    model.eval()
    images = real_images(6, (1, 28, 28))
    hidden: list[torch.Tensor] = []
    last = [m for m in model.fc if isinstance(m, torch.nn.Linear)][-1]
    hook = last.register_forward_hook(lambda mod, inp, out: hidden.append(inp[0].detach()))
    with torch.no_grad():
        model(torch.from_numpy(images[:1]).float())
    hook.remove()
    h = hidden[0][0]
    assert set(h.unique().tolist()) <= {-1.0, 1.0} and h.numel() == 64
    with torch.no_grad():
        last.weight[0] = h  # row 0 matches image 0's hidden pattern in all 64 positions
        model.fc[-1].weight.fill_(1.0)  # TensorNorm keeps the order of the logits
        logits = model(torch.from_numpy(images).float())
    assert logits[0].argmax().item() == 0
    out = tmp_path / "export"
    labels = np.zeros(len(images), dtype=np.int64)
    export(model, Dataset("real", images, labels, images, labels), out, golden_samples=len(images))

    build(out / "model.onnx", BuildConfig(output_dir=tmp_path / "b", target_cycles_per_frame=1000, verify_samples=6))
    write_rtl(tmp_path / "b")
    graph = load_onnx(tmp_path / "b" / "intermediate" / "estimate.onnx")
    mvau = [n for n in graph.graph.node if n.op_type.startswith("MVAU")][-1]
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(mvau)
    assert inst.get_nodeattr("noActivation") == 1 and inst.get_nodeattr("MW") == 64
    # FINN's reference computes the full popcount for image 0's class 0: exactly the boundary value.
    from finn.core.onnx_exec import execute_onnx

    from bnnflow.dataflow.verify import generic_layers

    probe = generic_layers(graph)
    iname = probe.graph.input[0].name
    x0 = np.load(out / "golden.npz")["inputs"][:1].reshape(probe.get_tensor_shape(iname)).astype(np.float32)
    acc = execute_onnx(probe, {iname: x0}, return_full_exec_context=True)[mvau.output[0]].reshape(-1)
    assert acc[0] == 64 and acc[0] == acc.max()
    # The RTL's accumulator holds 64, and the accelerator picks class 0 for image 0, as FINN and PyTorch do.
    layer = next(lay for lay in load_build_design(tmp_path / "b").layers if lay.name == mvau.name)
    assert layer.params["ACCBITS"] >= 8
    report = simulate(SimConfig(build_dir=tmp_path / "b", cppsim=False))
    assert report.mismatches_vs_finn == 0 and report.vs_pytorch is not None and report.vs_pytorch.ok
    assert report.outputs[0, 0] == 0
