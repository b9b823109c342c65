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

    def module(self, quant_tensor: bool = False) -> nn.Module:
        """quant_tensor: return a QuantTensor (what Brevitas' TruncAvgPool2d takes)."""
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFloat, Uint8ActPerTensorFloat
        from brevitas.quant.binary import SignedBinaryActPerTensorConst

        qt = {"return_quant_tensor": quant_tensor}
        if self.bipolar:
            cls = qnn.QuantHardTanh if self.kind == "hardtanh" else qnn.QuantIdentity
            return cls(act_quant=SignedBinaryActPerTensorConst, **qt)
        if self.kind == "relu":
            return qnn.QuantReLU(bit_width=self.bits, act_quant=Uint8ActPerTensorFloat, **qt)
        if self.kind == "hardtanh":
            return qnn.QuantHardTanh(bit_width=self.bits, max_val=1.0, min_val=-1.0, **qt)
        quant = Int8ActPerTensorFloat if self.signed else Uint8ActPerTensorFloat
        return qnn.QuantIdentity(bit_width=self.bits, act_quant=quant, **qt)

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
    depthwise: bool = False  # groups = channels (channels must equal the input's)
    # The pool's kind: "max"; "avg" (a float average pool, then the activation's quantizer again); "trunc"
    # (Brevitas' TruncAvgPool2d, FLOOR, on the activation's QuantTensor). Average pools follow the activation.
    pool_kind: str = "max"


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
    # After the convolutions: None, "adaptive" (nn.AdaptiveAvgPool2d(1), then a quantizer like the last
    # activation) or "trunc" (a TruncAvgPool2d over the whole map).
    global_pool: str | None = None

    @property
    def one_d(self) -> bool:
        """in_shape (C, L): Conv1d, BatchNorm1d and MaxPool1d."""
        return len(self.in_shape) == 2

    def describe(self) -> str:
        parts = [f"in{'x'.join(map(str, self.in_shape))}:{self.in_act or 'float'}"]
        for c in self.convs:
            kind = "" if c.pool_kind == "max" else c.pool_kind
            pool = f"+{'prepool' if c.pool_first else 'pool'}{kind}{c.pool[0]}s{c.pool[1]}" if c.pool else ""
            dw = "dw" if c.depthwise else "conv"
            parts.append(f"{dw}{c.channels}k{c.kernel}s{c.stride}p{c.padding}{'b' if c.bias else ''}:{c.act}{pool}")
        if self.global_pool:
            parts.append(f"gap-{self.global_pool}")
        parts += [f"fc{d.width}{'b' if d.bias else ''}:{d.act}" for d in self.dense]
        scale = "pc" if self.per_channel else "pt"
        return "-".join(parts) + f"-out{self.classes}{'b' if self.out_bias else ''}-w{self.wbits}{scale}"


def _pool(net: Net, c: Conv) -> list[nn.Module]:
    import brevitas.nn as qnn

    if c.pool is None:
        return []
    k, stride = c.pool
    if c.pool_kind == "max":
        return [(nn.MaxPool1d if net.one_d else nn.MaxPool2d)(k, stride=stride)]
    if c.pool_kind == "trunc":
        bits = c.act.bits + max(1, (k * k - 1).bit_length())
        return [qnn.TruncAvgPool2d(kernel_size=k, stride=stride, bit_width=bits, float_to_int_impl_type="FLOOR")]
    return [(nn.AvgPool1d if net.one_d else nn.AvgPool2d)(k, stride=stride), c.act.module()]


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
        conv_cls, bn_cls = (qnn.QuantConv1d, nn.BatchNorm1d) if net.one_d else (qnn.QuantConv2d, nn.BatchNorm2d)
        for c in net.convs:
            groups = channels if c.depthwise else 1
            layers.append(conv_cls(channels, c.channels, c.kernel, stride=c.stride, padding=c.padding, groups=groups,
                                   bias=c.bias, **wq))  # fmt: skip
            pool = _pool(net, c)
            layers += pool if c.pool_first else []
            if c.bn:
                layers.append(bn_cls(c.channels))
            layers.append(c.act.module(quant_tensor=c.pool_kind == "trunc"))
            layers += pool if not c.pool_first else []
            channels = c.channels
        if net.global_pool is not None:
            last = net.convs[-1].act if net.convs else net.in_act
            assert last is not None
            if net.global_pool == "trunc":
                layers[-1] = last.module(quant_tensor=True)
            with torch.no_grad():
                size = int(nn.Sequential(*layers).eval()(torch.zeros(1, *net.in_shape)).shape[-1])
            if net.global_pool == "trunc":
                bits = last.bits + 2 * max(1, (size - 1).bit_length())
                layers.append(qnn.TruncAvgPool2d(kernel_size=size, stride=1, bit_width=bits,
                                                 float_to_int_impl_type="FLOOR"))  # fmt: skip
            else:
                layers += [nn.AdaptiveAvgPool2d(1), last.module()]
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            features = int(np.prod(self.features.eval()(torch.zeros(1, *net.in_shape)).shape[1:]))
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
