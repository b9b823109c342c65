"""Thresholds beyond the accumulator's range stay beyond it, through every build step and in the RTL.

A binary layer of 64 inputs counts 0..64 matching bits. A BatchNorm can put a neuron's threshold outside that range:
at 70 the neuron never fires, at -5 it always fires. FINN sizes the accumulator of an XNOR unit for +-1 weights times
0/1 inputs ([-64, 63]) and its RoundAndClipThresholds clipped 70 to 64, so the neuron fired on a full match. Here
every threshold from far below to far above the range, and each one at the edges (0, 1, 63, 64, 65), is met by
golden inputs that sit exactly on it: each neuron's own weight pattern (a full match, popcount 64) and that pattern
with one bit flipped (63)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.hw.generate import write_rtl
from bnnflow.sim.harness import SimConfig, simulate
from bnnflow.training.export import export_module
from tests.byon import Act, Dense, Net, build_net

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]

FANIN = 64
# Popcount thresholds, one per hidden neuron: never fires (70, 65, 2 * FANIN), fires only on a full match (64),
# ordinary (63, 32, 1), always fires (0, -5, -FANIN).
THRESHOLDS = [70, 65, 64, 63, 32, 1, 0, -5, 2 * FANIN, -FANIN]


def boundary_net(wbits: int, abits: int) -> tuple[torch.nn.Module, np.ndarray]:
    """64 -> 10 -> 4, the hidden neuron n firing when its popcount (w1a1) reaches THRESHOLDS[n]; and inputs on
    every neuron's edge."""
    act = Act("identity", abits)
    net = Net((FANIN,), Act("identity", 1), dense=(Dense(len(THRESHOLDS), act=act),), classes=4, wbits=wbits)
    model = build_net(net, seed=5)
    linear, bn = model.classifier[0], model.classifier[1]
    with torch.no_grad():
        w = linear.quant_weight().value.detach()  # (hidden, 64)
        scale = float(w.abs().max())  # a binary layer's weights are +-scale: sum = scale * (2 * popcount - 64)
        # BN(s) = (s - mean) >= 0 fires (gamma 1, beta 0, unit deviation). s = scale * (2p - 64) moves in steps of
        # 2 * scale; mean half a step below the threshold's sum keeps every input off the tie.
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        bn.running_mean.copy_(torch.tensor([scale * (2 * t - FANIN - 1) for t in THRESHOLDS]))
    signs = (w > 0).numpy().astype(np.float32)  # input 1.0 -> +1, 0.0 -> -1 after the centring 2x - 1
    near = signs.copy()
    near[:, 0] = 1.0 - near[:, 0]
    rng = np.random.default_rng(5)
    x = np.concatenate([signs, near, rng.integers(0, 2, (4, FANIN)).astype(np.float32)])
    return model.eval(), x


@pytest.mark.parametrize(("wbits", "abits"), [(1, 1), (1, 2)])
def test_out_of_range_thresholds_stay_out_of_range(tmp_path, wbits, abits) -> None:
    model, x = boundary_net(wbits, abits)
    hidden = model.classifier[:3]
    with torch.no_grad():
        h = hidden(2.0 * torch.from_numpy(x) - 1.0).numpy()
    full = h[: len(THRESHOLDS)].diagonal()  # each neuron on its own full match
    if abits == 1:
        fires = full > 0
        assert fires.tolist() == [t <= FANIN for t in THRESHOLDS], fires
    export_module(model, x, tmp_path / "src")
    # label_select off: the per-step checks and the simulation compare every logit, not only the class.
    cfg = BuildConfig(output_dir=tmp_path / "b", target_cycles_per_frame=100, label_select=False, verify_samples=len(x))
    build(tmp_path / "src" / "model.onnx", cfg)
    write_rtl(tmp_path / "b")
    report = simulate(SimConfig(build_dir=tmp_path / "b", cppsim=False))
    assert report.mismatches_vs_finn == 0
    assert report.vs_pytorch is not None and report.vs_pytorch.ok, report.vs_pytorch
    assert report.vs_pytorch.samples == len(x)
