"""Networks as Brevitas users write them, for the bring-your-own-network tests and benchmark: plain Brevitas
modules (not bnnflow's zoo classes) trained on float inputs, with any activation kind and bit width, bias or
not, per-tensor or per-channel weight scales, BatchNorm, padding, stride and max-pool of any size, described by
a small spec so that hypothesis can draw them and a failure prints the network it failed on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Act:
    """A quantized activation: `kind` identity, relu or hardtanh; 1-bit signed kinds are bipolar."""

    kind: str = "identity"
    bits: int = 2
    signed: bool = True  # identity only: Int (signed) or Uint (unsigned) quantizer

    @property
    def bipolar(self) -> bool:
        return self.bits == 1 and self.kind != "relu" and self.signed

    def module(self) -> nn.Module:
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFloat, Uint8ActPerTensorFloat
        from brevitas.quant.binary import SignedBinaryActPerTensorConst

        if self.bipolar:
            cls = qnn.QuantHardTanh if self.kind == "hardtanh" else qnn.QuantIdentity
            return cls(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=False)
        if self.kind == "relu":
            return qnn.QuantReLU(bit_width=self.bits, act_quant=Uint8ActPerTensorFloat)
        if self.kind == "hardtanh":
            return qnn.QuantHardTanh(bit_width=self.bits, max_val=1.0, min_val=-1.0)
        quant = Int8ActPerTensorFloat if self.signed else Uint8ActPerTensorFloat
        return qnn.QuantIdentity(bit_width=self.bits, act_quant=quant)

    def __str__(self) -> str:
        sign = "" if self.kind != "identity" else ("s" if self.signed else "u")
        return f"{self.kind}{sign}{self.bits}"


@dataclass(frozen=True)
class Conv:
    channels: int
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    pool: tuple[int, int] | None = None  # max-pool (kernel, stride) after the activation
    bias: bool = False
    bn: bool = True
    act: Act = field(default_factory=Act)
    pool_first: bool = False  # conv -> pool -> BatchNorm -> activation, instead of pooling the activations


@dataclass(frozen=True)
class Dense:
    width: int
    bias: bool = False
    bn: bool = True
    act: Act = field(default_factory=Act)


@dataclass(frozen=True)
class Net:
    """in_shape (C, H, W) for a CNN, (F,) for an MLP; inputs are floats in [0, 1)."""

    in_shape: tuple[int, ...]
    in_act: Act | None  # the input quantizer; None: the first layer takes the float input itself
    convs: tuple[Conv, ...] = ()
    dense: tuple[Dense, ...] = ()
    classes: int = 10
    wbits: int = 2
    per_channel: bool = False
    out_bias: bool = False
    centre: bool = True  # 2x - 1 in front of the input quantizer, as bnn_pynq does

    def describe(self) -> str:
        parts = [f"in{'x'.join(map(str, self.in_shape))}:{self.in_act or 'float'}"]
        for c in self.convs:
            pool = f"+{'prepool' if c.pool_first else 'pool'}{c.pool[0]}s{c.pool[1]}" if c.pool else ""
            parts.append(f"conv{c.channels}k{c.kernel}s{c.stride}p{c.padding}{'b' if c.bias else ''}:{c.act}{pool}")
        parts += [f"fc{d.width}{'b' if d.bias else ''}:{d.act}" for d in self.dense]
        scale = "pc" if self.per_channel else "pt"
        return "-".join(parts) + f"-out{self.classes}{'b' if self.out_bias else ''}-w{self.wbits}{scale}"


def _weight_quant(net: Net) -> dict[str, object]:
    from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat
    from brevitas.quant.binary import SignedBinaryWeightPerTensorConst

    if net.wbits == 1:
        return {"weight_quant": SignedBinaryWeightPerTensorConst}
    quant = Int8WeightPerChannelFloat if net.per_channel else Int8WeightPerTensorFloat
    return {"weight_quant": quant, "weight_bit_width": net.wbits}


class ByonNet(nn.Module):
    def __init__(self, net: Net) -> None:
        import brevitas.nn as qnn

        super().__init__()
        self.net = net
        layers: list[nn.Module] = [net.in_act.module()] if net.in_act is not None else []
        wq = _weight_quant(net)
        channels = net.in_shape[0]
        for c in net.convs:
            layers.append(qnn.QuantConv2d(channels, c.channels, c.kernel, stride=c.stride, padding=c.padding,
                                          bias=c.bias, **wq))  # fmt: skip
            pool = [nn.MaxPool2d(c.pool[0], stride=c.pool[1])] if c.pool else []
            layers += pool if c.pool_first else []
            if c.bn:
                layers.append(nn.BatchNorm2d(c.channels))
            layers.append(c.act.module())
            layers += pool if not c.pool_first else []
            channels = c.channels
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            features = int(np.prod(self.features(torch.zeros(1, *net.in_shape)).shape[1:]))
        dense: list[nn.Module] = []
        for d in net.dense:
            dense.append(qnn.QuantLinear(features, d.width, bias=d.bias, **wq))
            if d.bn:
                dense.append(nn.BatchNorm1d(d.width))
            dense.append(d.act.module())
            features = d.width
        dense.append(qnn.QuantLinear(features, net.classes, bias=net.out_bias, **wq))
        self.classifier = nn.Sequential(*dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.net.centre:
            x = 2.0 * x - 1.0
        x = self.features(x)
        return self.classifier(x.flatten(1))


def _random_batchnorm(model: nn.Module, gen: torch.Generator, spread: float, var_span: float) -> None:
    """Every BatchNorm gets random statistics: mean and bias in [-spread, spread] and [-spread/2, spread/2],
    variance in [0.5, 0.5 + var_span], weight in [0.5, 1.5]."""
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_((torch.rand(n, generator=gen) * 2 - 1) * spread)
            mod.running_var.copy_(torch.rand(n, generator=gen) * var_span + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            mod.bias.data.copy_((torch.rand(n, generator=gen) - 0.5) * spread)


def build_net(net: Net, seed: int = 0) -> nn.Module:
    """The network with random weights and BatchNorm statistics (none of them trivial), in eval mode."""
    torch.manual_seed(seed)
    model = ByonNet(net)
    gen = torch.Generator().manual_seed(seed)
    _random_batchnorm(model, gen, spread=1.0, var_span=1.0)
    # Calibrate float-scaled activation quantizers on data, as a training run would leave them.
    model.train()
    with torch.no_grad():
        model(torch.rand(32, *net.in_shape, generator=gen))
    return model.eval()


def inputs_for(net: Net, n: int, seed: int = 0) -> np.ndarray:
    """Float inputs in [0, 1) as image pipelines deliver them: k/255 for pixel values k."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, *net.in_shape)) / 255.0).astype(np.float32)


def export_net(net: Net, out: Path, samples: int = 6, seed: int = 0) -> Path:
    """Export the network from float inputs with golden data; returns the directory."""
    from bnnflow.training.export import export_module

    export_module(build_net(net, seed), inputs_for(net, samples, seed), out)
    return out


def bnn_pynq(name: str, out: Path, samples: int = 6, seed: int = 0) -> Path:
    """One of Brevitas' own bnn_pynq models (FINN's end-to-end test networks), random weights and BatchNorm
    statistics, exported from float images in [0, 1] as bnn_pynq trains them."""
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    from bnnflow.training.export import export_module

    torch.manual_seed(seed)
    model, _ = model_with_cfg(name, pretrained=False)
    gen = torch.Generator().manual_seed(seed)
    _random_batchnorm(model, gen, spread=2.0, var_span=1.5)
    shape = (3, 32, 32) if name.startswith("cnv") else (1, 28, 28)
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 256, size=(samples, *shape)) / 255.0).astype(np.float32)
    export_module(model.eval(), x, out)
    return out
