"""The BNN model zoo (TFC, SFC, LFC, CNV as in Brevitas bnn_pynq) and user-defined MLPs/CNNs.

Every network is described by a `ModelSpec` and built by one function, so zoo entries and user models share
the exact same layer recipe: QuantLinear/QuantConv2d without bias -> BatchNorm -> QuantIdentity, which FINN
streamlines into XNOR-popcount (or integer) matrix-vector units with thresholds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from torch import nn

from bnnflow.configfile import read_mapping
from bnnflow.errors import BnnflowError
from bnnflow.training.quant import ActQuant, WeightQuant, input_quant_kwargs

# Weight/activation bit widths the zoo is defined and tested for (bnn_pynq: w1a1, w1a2, w2a2).
ZOO_BITS: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (2, 2))
# Widest quantization a user model may ask for; FINN's integer MVAU handles these.
MAX_BITS = 8


@dataclass(frozen=True)
class ConvLayer:
    """One unpadded convolution block: QuantConv2d -> BatchNorm2d -> activation [-> 2x2 max-pool]."""

    channels: int
    kernel: int = 3
    pool: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network; stored in checkpoints, so it must stay plain data."""

    name: str
    """Zoo name (tfc, sfc, lfc, cnv) or the user's own name."""
    wbits: int
    """Weight bit width: 1 = binary {-1, +1}, 2 = ternary {-1, 0, +1}, more = signed integers."""
    abits: int
    """Hidden activation bit width, same convention as wbits."""
    in_bits: int
    """Input quantizer bit width: 1 binarizes pixels (MNIST MLPs), 8 keeps 8-bit pixels (CNV)."""
    input_shape: tuple[int, int, int]
    """Channels, height, width of one input image."""
    num_classes: int = 10
    conv: tuple[ConvLayer, ...] = ()
    """Convolution blocks, in order; empty for an MLP."""
    fc: tuple[int, ...] = ()
    """Hidden fully-connected widths; a final QuantLinear to num_classes always follows."""
    dropout: float = 0.0
    """Dropout probability after the input and each hidden FC activation (training only)."""
    inputs: tuple[int, ...] = ()
    """MLPs: the input features (of the flattened C*H*W image) the network reads, ascending; empty: all of them.
    Node pruning drops the pixels that carry no information; the exported network then takes only these."""

    @property
    def is_cnn(self) -> bool:
        return bool(self.conv)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        data = dict(data)
        data["conv"] = tuple(ConvLayer(**c) if isinstance(c, Mapping) else c for c in data.get("conv", ()))
        data["fc"] = tuple(int(w) for w in data.get("fc", ()))
        data["input_shape"] = tuple(int(d) for d in data["input_shape"])
        data["inputs"] = tuple(int(i) for i in data.get("inputs", ()))
        return cls(**data)


@dataclass(frozen=True)
class _Topology:
    conv: tuple[ConvLayer, ...]
    fc: tuple[int, ...]
    in_bits: int
    dropout: float
    dataset: str = "mnist"


_CNV_CONV = (
    ConvLayer(64),
    ConvLayer(64, pool=True),
    ConvLayer(128),
    ConvLayer(128, pool=True),
    ConvLayer(256),
    ConvLayer(256),
)

ZOO: dict[str, _Topology] = {
    "tfc": _Topology(conv=(), fc=(64, 64, 64), in_bits=1, dropout=0.2),
    "sfc": _Topology(conv=(), fc=(256, 256, 256), in_bits=1, dropout=0.2),
    "lfc": _Topology(conv=(), fc=(1024, 1024, 1024, 1024), in_bits=1, dropout=0.2),
    "cnv": _Topology(conv=_CNV_CONV, fc=(512, 512), in_bits=8, dropout=0.0, dataset="cifar10"),
}


def zoo_augments(model_name: str) -> bool:
    """Whether the distill recipe augments this model's training images: every zoo network's. Without shifts the
    wide ones overfit MNIST within a few epochs, and even TFC does by 80 (BENCHMARKS.md)."""
    return model_name in ZOO


def default_dataset(model_name: str) -> str:
    """The data set a zoo model was published on."""
    return ZOO[model_name].dataset if model_name in ZOO else "mnist"


def zoo_spec(name: str, wbits: int, abits: int, input_shape: tuple[int, int, int], num_classes: int = 10) -> ModelSpec:
    """The spec of a zoo network at the given bit widths and input shape."""
    key = name.lower()
    if key not in ZOO:
        raise BnnflowError(
            f"unknown model '{name}'; choose one of {', '.join(sorted(ZOO))} or pass --model-config FILE"
        )
    if (wbits, abits) not in ZOO_BITS:
        legal = ", ".join(f"w{w}a{a}" for w, a in ZOO_BITS)
        raise BnnflowError(f"unsupported bit widths w{wbits}a{abits} for zoo model '{key}'; supported: {legal}")
    topo = ZOO[key]
    spec = ModelSpec(
        name=key,
        wbits=wbits,
        abits=abits,
        in_bits=topo.in_bits,
        input_shape=input_shape,
        num_classes=num_classes,
        conv=topo.conv,
        fc=topo.fc,
        dropout=topo.dropout,
    )
    validate_spec(spec)
    return spec


def load_model_config(path: Path, input_shape: tuple[int, int, int], num_classes: int = 10) -> ModelSpec:
    """Read a user topology from YAML/JSON.

    Keys: name, wbits, abits, in_bits (default 1 for MLPs, 8 for CNNs), fc (list of widths),
    conv (list of {channels, kernel, pool}), dropout.
    """
    raw = read_mapping(path, "model config")
    known = {"name", "wbits", "abits", "in_bits", "fc", "conv", "dropout"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BnnflowError(f"model config {path}: unknown keys {unknown}; allowed: {sorted(known)}")
    try:
        conv = tuple(ConvLayer(**c) for c in raw.get("conv") or ())
        spec = ModelSpec(
            name=str(raw.get("name", Path(path).stem)),
            wbits=int(raw.get("wbits", 1)),
            abits=int(raw.get("abits", 1)),
            in_bits=int(raw.get("in_bits", 8 if conv else 1)),
            input_shape=input_shape,
            num_classes=num_classes,
            conv=conv,
            fc=tuple(int(w) for w in raw.get("fc") or ()),
            dropout=float(raw.get("dropout", 0.0)),
        )
    except (TypeError, ValueError) as exc:
        raise BnnflowError(f"model config {path}: {exc}") from exc
    validate_spec(spec)
    return spec


class _MaskAfterQuant:
    """Multiplies the quantized weight by the pruning mask that torch.nn.utils.prune keeps in `weight_mask`.

    torch's pruning masks the latent weight, but Brevitas binarizes an exact 0 to +1: only a mask applied after
    the quantizer makes a pruned 1-bit weight 0. Without a mask the layer is the plain Brevitas layer.
    """

    def inner_forward_impl(self, x: torch.Tensor, quant_weight: torch.Tensor, quant_bias: Any) -> torch.Tensor:
        mask = getattr(self, "weight_mask", None)
        if mask is not None:
            quant_weight = quant_weight * mask
        out: torch.Tensor = super().inner_forward_impl(x, quant_weight, quant_bias)  # type: ignore[misc]
        return out


class MaskedQuantLinear(_MaskAfterQuant, QuantLinear):
    """QuantLinear whose pruned weights are exactly 0 after quantization."""


class MaskedQuantConv2d(_MaskAfterQuant, QuantConv2d):
    """QuantConv2d whose pruned weights are exactly 0 after quantization."""


def validate_spec(spec: ModelSpec) -> None:
    """Reject specs that cannot be built, with the reason."""
    for what, bits in (("wbits", spec.wbits), ("abits", spec.abits), ("in_bits", spec.in_bits)):
        if not 1 <= bits <= MAX_BITS:
            raise BnnflowError(f"model '{spec.name}': {what}={bits} is unsupported; use 1..{MAX_BITS}")
    if any(w <= 0 for w in spec.fc) or any(c.channels <= 0 or c.kernel <= 0 for c in spec.conv):
        raise BnnflowError(f"model '{spec.name}': layer widths and kernel sizes must be positive")
    if not 0.0 <= spec.dropout < 1.0:
        raise BnnflowError(f"model '{spec.name}': dropout must be in [0, 1)")
    if spec.inputs:
        size = int(np.prod(spec.input_shape))
        if spec.is_cnn or list(spec.inputs) != sorted(set(spec.inputs)) or not 0 <= spec.inputs[0] < size or \
                spec.inputs[-1] >= size:  # fmt: skip
            raise BnnflowError(f"model '{spec.name}': inputs must be ascending feature indices of an MLP's input")
    _, h, w = spec.input_shape
    for i, layer in enumerate(spec.conv):
        h, w = h - layer.kernel + 1, w - layer.kernel + 1
        if layer.pool:
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise BnnflowError(
                f"model '{spec.name}': input {spec.input_shape[1]}x{spec.input_shape[2]} is too small for "
                f"conv layer {i} (kernel {layer.kernel}); use a data set with larger images"
            )


class TensorNorm(nn.Module):
    """Batch normalisation with a single mean, variance and affine pair for the whole tensor.

    It scales the logits of binarized networks (bnn_pynq puts it after the last layer); at inference it is
    one multiply and one add, which FINN moves to the end of the graph.
    """

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, eps: float = 1e-4, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))
        self.register_buffer("running_mean", torch.zeros(1))
        self.register_buffer("running_var", torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = x.mean()
            var = x.var(unbiased=False)
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * x.var(unbiased=True))
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class BNN(nn.Module):
    """A binarized/low-bit network built from a ModelSpec.

    Input: raw pixel intensities in [0, 255] (uint8 values as float). The network centres them to [-1, 1]
    itself, so the exported graph takes the integers that the accelerator will stream.
    MLP inputs are flat (N, C*H*W); CNN inputs are (N, C, H, W).
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        validate_spec(spec)
        self.spec = spec
        self.input_quant = QuantIdentity(**input_quant_kwargs(spec.in_bits), return_quant_tensor=False)
        self.input_dropout = nn.Dropout(spec.dropout) if spec.dropout and not spec.is_cnn else nn.Identity()
        conv: list[nn.Module] = []
        channels, h, w = spec.input_shape
        for layer in spec.conv:
            conv += [
                MaskedQuantConv2d(
                    channels,
                    layer.channels,
                    layer.kernel,
                    bias=False,
                    weight_quant=WeightQuant,
                    weight_bit_width=spec.wbits,
                ),
                nn.BatchNorm2d(layer.channels, eps=1e-4),
                QuantIdentity(act_quant=ActQuant, bit_width=spec.abits),
            ]
            channels = layer.channels
            h, w = h - layer.kernel + 1, w - layer.kernel + 1
            if layer.pool:
                conv.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
        self.conv = nn.Sequential(*conv)
        fc: list[nn.Module] = []
        features = len(spec.inputs) if spec.inputs else channels * h * w
        if spec.inputs:
            self.register_buffer("input_index", torch.tensor(spec.inputs, dtype=torch.long))
        for width in spec.fc:
            fc += [
                MaskedQuantLinear(features, width, bias=False, weight_quant=WeightQuant, weight_bit_width=spec.wbits),
                nn.BatchNorm1d(width, eps=1e-4),
                QuantIdentity(act_quant=ActQuant, bit_width=spec.abits),
            ]
            if spec.dropout:
                fc.append(nn.Dropout(spec.dropout))
            features = width
        fc += [
            MaskedQuantLinear(
                features, spec.num_classes, bias=False, weight_quant=WeightQuant, weight_bit_width=spec.wbits
            ),
            TensorNorm(),
        ]
        self.fc = nn.Sequential(*fc)
        for module in self.modules():
            if isinstance(module, QuantLinear | QuantConv2d):
                # Latent weights live in [-1, 1] (BinaryConnect); clip_weights keeps them there.
                nn.init.uniform_(module.weight, -1.0, 1.0)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A zero tensor of the exported input shape."""
        c, h, w = self.spec.input_shape
        shape = (batch, c, h, w) if self.spec.is_cnn else (batch, len(self.spec.inputs) or c * h * w)
        return torch.zeros(shape)

    def select_inputs(self, x: np.ndarray) -> np.ndarray:
        """Images (N, C, H, W) or flat (N, C*H*W) in the exported network's input layout."""
        if self.spec.is_cnn:
            return x
        flat = x.reshape(len(x), -1)
        return flat[:, list(self.spec.inputs)] if self.spec.inputs else flat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.spec.is_cnn and x.dim() > 2:
            x = x.flatten(1)
        if self.spec.inputs and x.shape[1] != len(self.spec.inputs):
            x = x[:, cast(torch.Tensor, self.input_index)]  # whole images in: keep the pixels the network reads
        x = x * (2.0 / 255.0) - 1.0
        x = self.input_dropout(self.input_quant(x))
        x = self.conv(x)
        if self.spec.is_cnn:
            x = x.flatten(1)
        out: torch.Tensor = self.fc(x)
        return out

    @torch.no_grad()
    def clip_weights(self, low: float = -1.0, high: float = 1.0) -> None:
        for module in self.modules():
            if isinstance(module, QuantLinear | QuantConv2d):
                # Under torch pruning the parameter is weight_orig; `weight` is recomputed from it.
                getattr(module, "weight_orig", module.weight).clamp_(low, high)


def build_model(spec: ModelSpec) -> BNN:
    return BNN(spec)


@torch.no_grad()
def randomize_batchnorm(model: nn.Module, seed: int) -> None:
    """Give every BatchNorm non-trivial statistics, so untrained models still exercise thresholds."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            n = module.num_features
            fan_in = _fan_in_before(model, module)
            spread = math.sqrt(fan_in)
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.copy_((torch.rand(n, generator=gen) * 2 - 1) * spread)
            module.running_var.copy_((torch.rand(n, generator=gen) + 0.5) * fan_in)
            module.weight.copy_(torch.rand(n, generator=gen) * 1.5 + 0.25)
            module.bias.copy_(torch.rand(n, generator=gen) - 0.5)
        elif isinstance(module, TensorNorm):
            module.running_mean.fill_(float(torch.rand(1, generator=gen)))
            module.running_var.fill_(float(torch.rand(1, generator=gen)) + 1.0)
            module.weight.fill_(float(torch.rand(1, generator=gen)) + 0.5)
            module.bias.fill_(float(torch.rand(1, generator=gen)) - 0.5)


def _fan_in_before(model: nn.Module, bn: nn.Module) -> int:
    previous: QuantLinear | QuantConv2d | None = None
    for module in model.modules():
        if module is bn and previous is not None:
            return int(previous.weight[0].numel())
        if isinstance(module, QuantLinear | QuantConv2d):
            previous = module
    return 1
