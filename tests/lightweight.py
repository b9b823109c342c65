"""The lightweight architectures as their users write them, for the build-and-simulate tests and benchmarks:
Brevitas' own MobileNet-v1 (brevitas_examples, the quant_mobilenet_v1_4b configuration at any width and
resolution), a RadioML VGG10-shaped 1D CNN, a keyword-spotting MLP, and a small depthwise-separable network of
this project's own design. Random weights and BatchNorm statistics, float inputs, exported with export_qonnx."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from tests.byon import _random_batchnorm


def _calibrated(model: nn.Module, shape: tuple[int, ...], seed: int) -> nn.Module:
    """Random BatchNorm statistics, then the float-scaled quantizers calibrated on random data, in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    _random_batchnorm(model, gen, spread=1.0, var_span=1.0)
    model.train()
    with torch.no_grad():
        model(torch.rand(8, *shape, generator=gen))
    return model.eval()


def mobilenet_v1(width: float = 0.25, res: int = 32, classes: int = 10, seed: int = 0) -> nn.Module:
    """brevitas_examples' MobileNet-v1 in its quant_mobilenet_v1_4b configuration (8-bit first layer and classifier,
    4-bit depthwise and pointwise layers, FLOOR TruncAvgPool2d), `width` times the channels. At 224 x 224 it is the
    ImageNet network (first stride 2, 7 x 7 final pool); smaller images keep stride 1 in the first layer so that
    32 x 32 still ends in a 2 x 2 map to pool."""
    from brevitas_examples.imagenet_classification.models.mobilenetv1 import MobileNet

    channels = [[32], [64], [128, 128], [256, 256], [512] * 6, [1024, 1024]]
    channels = [[max(1, int(c * width)) for c in stage] for stage in channels]
    first_stride = 2 if res >= 64 else 1
    first = res // first_stride - (0 if first_stride == 2 else 2)  # the stride-1 first layer is unpadded
    size = first
    for _ in range(4):
        size = (size - 1) // 2 + 1
    torch.manual_seed(seed)
    model = MobileNet(channels=channels, first_stage_stride=False, act_bit_width=4, weight_bit_width=4,
                      round_average_pool=False, last_layer_bit_width=8, avg_pool_kernel_size=size,
                      first_layer_stride=first_stride, num_classes=classes)  # fmt: skip
    return _calibrated(model, (3, res, res), seed)


class Vgg1d(nn.Module):
    """RadioML VGG10's shape: 8-bit I/Q input quantizer, `blocks` x (Conv1d k3 pad 1, BatchNorm, ReLU, MaxPool1d 2),
    two dense layers and the classifier, `bits` everywhere else."""

    def __init__(self, channels: int = 64, length: int = 1024, blocks: int = 7, bits: int = 4, classes: int = 24,
                 fc: int = 128) -> None:  # fmt: skip
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFloat, Uint8ActPerTensorFloat

        super().__init__()

        def relu(qt: bool) -> nn.Module:
            return qnn.QuantReLU(bit_width=bits, act_quant=Uint8ActPerTensorFloat, return_quant_tensor=qt)

        layers: list[nn.Module] = [qnn.QuantIdentity(bit_width=8, act_quant=Int8ActPerTensorFloat)]
        cin = 2
        for _ in range(blocks):
            layers += [qnn.QuantConv1d(cin, channels, 3, padding=1, bias=False, weight_bit_width=bits),
                       nn.BatchNorm1d(channels), relu(False), nn.MaxPool1d(2)]  # fmt: skip
            cin = channels
        self.features = nn.Sequential(*layers)
        n = channels * (length >> blocks)
        self.classifier = nn.Sequential(
            qnn.QuantLinear(n, fc, bias=False, weight_bit_width=bits), nn.BatchNorm1d(fc), relu(False),
            qnn.QuantLinear(fc, fc, bias=False, weight_bit_width=bits), nn.BatchNorm1d(fc), relu(False),
            qnn.QuantLinear(fc, classes, bias=True, weight_bit_width=bits),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def vgg1d(channels: int = 64, length: int = 1024, blocks: int = 7, seed: int = 0, **kw: int) -> nn.Module:
    torch.manual_seed(seed)
    return _calibrated(Vgg1d(channels, length, blocks, **kw), (2, length), seed)


class KwsMlp(nn.Module):
    """A keyword-spotting MLP's shape: `inputs` MFCC features, an 8-bit input quantizer, hidden layers with
    BatchNorm and `bits`-bit ReLUs, `bits`-bit weights."""

    def __init__(self, inputs: int = 490, hidden: tuple[int, ...] = (64, 64, 64), classes: int = 12,
                 bits: int = 3) -> None:  # fmt: skip
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFloat, Uint8ActPerTensorFloat

        super().__init__()
        layers: list[nn.Module] = [qnn.QuantIdentity(bit_width=8, act_quant=Int8ActPerTensorFloat)]
        n = inputs
        for h in hidden:
            layers += [qnn.QuantLinear(n, h, bias=True, weight_bit_width=bits), nn.BatchNorm1d(h),
                       qnn.QuantReLU(bit_width=bits, act_quant=Uint8ActPerTensorFloat)]  # fmt: skip
            n = h
        layers.append(qnn.QuantLinear(n, classes, bias=True, weight_bit_width=bits))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def kws_mlp(seed: int = 0, **kw: object) -> nn.Module:
    torch.manual_seed(seed)
    model = KwsMlp(**kw)  # type: ignore[arg-type]
    return _calibrated(model, (model.net[1].in_features,), seed)


class DwNet(nn.Module):
    """A depthwise-separable network of this project's own design, unlike MobileNet's blocks: a padded 5 x 5
    depthwise layer with stride 2 on 3-bit data and per-tensor 3-bit weights, signed 4-bit activations, a k x k
    TruncAvgPool2d with stride in the middle, 2-bit pointwise layers, and a global TruncAvgPool2d before a 6-bit
    classifier with bias."""

    def __init__(self, channels: int = 12, res: int = 20, classes: int = 5) -> None:
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerTensorFloat, Uint8ActPerTensorFloat

        super().__init__()

        def conv(cin: int, cout: int, k: int, stride: int, pad: int, groups: int, wbits: int) -> nn.Module:
            return qnn.QuantConv2d(cin, cout, k, stride=stride, padding=pad, groups=groups, bias=False,
                                   weight_quant=Int8WeightPerTensorFloat, weight_bit_width=wbits)  # fmt: skip

        c = channels
        self.body = nn.Sequential(
            qnn.QuantIdentity(bit_width=8, act_quant=Int8ActPerTensorFloat),
            conv(3, c, 3, 1, 1, 1, 4), nn.BatchNorm2d(c),
            qnn.QuantReLU(bit_width=3, act_quant=Uint8ActPerTensorFloat),
            conv(c, c, 5, 2, 2, c, 3), nn.BatchNorm2d(c),
            qnn.QuantIdentity(bit_width=4, act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
            qnn.TruncAvgPool2d(kernel_size=2, stride=2, bit_width=4, float_to_int_impl_type="FLOOR"),
            conv(c, 2 * c, 1, 1, 0, 1, 2), nn.BatchNorm2d(2 * c),
            qnn.QuantReLU(bit_width=2, act_quant=Uint8ActPerTensorFloat),
            conv(2 * c, 2 * c, 3, 1, 1, 2 * c, 2), nn.BatchNorm2d(2 * c),
            qnn.QuantReLU(bit_width=4, act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
        )  # fmt: skip
        with torch.no_grad():
            size = self.body(torch.zeros(1, 3, res, res)).shape[-1]
        self.pool = qnn.TruncAvgPool2d(kernel_size=size, stride=1, bit_width=6, float_to_int_impl_type="FLOOR")
        self.head = qnn.QuantLinear(2 * c, classes, bias=True, weight_bit_width=6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.body(x)).flatten(1))


def dwnet(channels: int = 12, res: int = 20, classes: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return _calibrated(DwNet(channels, res, classes), (3, res, res), seed)


def float_images(shape: tuple[int, ...], n: int, seed: int = 0) -> np.ndarray:
    """Inputs in [0, 1) as image pipelines deliver them: k/255 for pixel values k."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, *shape)) / 255.0).astype(np.float32)


def export(model: nn.Module, x: np.ndarray, out: Path) -> Path:
    from bnnflow.training.export import export_module

    export_module(model, x, out)
    return out
