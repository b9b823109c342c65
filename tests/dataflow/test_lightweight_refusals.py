"""What the lightweight architectures' layers cannot become is refused by node, in one line, with exit 2 and no
build left half-written: grouped convolutions, depthwise channel multipliers, an average pool whose output is not
quantized, a sigmoid, and a squeeze-and-excitation product of two streams."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from bnnflow.cli import main
from tests.lightweight import _calibrated, export, float_images


def _act(bits: int = 4) -> nn.Module:
    import brevitas.nn as qnn
    from brevitas.quant import Uint8ActPerTensorFloat

    return qnn.QuantReLU(bit_width=bits, act_quant=Uint8ActPerTensorFloat)


def _stem(channels: int = 8) -> list[nn.Module]:
    import brevitas.nn as qnn
    from brevitas.quant import Int8ActPerTensorFloat

    conv = qnn.QuantConv2d(3, channels, 3, weight_bit_width=4, bias=False)
    return [qnn.QuantIdentity(bit_width=8, act_quant=Int8ActPerTensorFloat), conv, nn.BatchNorm2d(channels), _act()]


def _conv(cin: int, cout: int, groups: int) -> list[nn.Module]:
    import brevitas.nn as qnn

    return [qnn.QuantConv2d(cin, cout, 3, groups=groups, weight_bit_width=4, bias=False), nn.BatchNorm2d(cout), _act()]


def _head(features: int) -> list[nn.Module]:
    import brevitas.nn as qnn

    return [nn.Flatten(), qnn.QuantLinear(features, 4, weight_bit_width=4, bias=False)]


class _Gate(nn.Module):
    """Squeeze-and-excitation: the feature map times a gate computed from its global average."""

    def __init__(self) -> None:
        import brevitas.nn as qnn

        super().__init__()
        self.stem = nn.Sequential(*_stem())
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), qnn.QuantConv2d(8, 8, 1, weight_bit_width=4, bias=False),
                                  _act())  # fmt: skip
        self.head = nn.Sequential(*_head(8 * 6 * 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        return self.head(y * self.gate(y))


def _sigmoid() -> nn.Module:
    import brevitas.nn as qnn
    from brevitas.quant import Uint8ActPerTensorFloat

    stem = _stem()[:-1]  # conv and BatchNorm, then the sigmoid instead of the ReLU
    return nn.Sequential(*stem, nn.Sigmoid(), qnn.QuantIdentity(bit_width=4, act_quant=Uint8ActPerTensorFloat),
                         *_head(8 * 6 * 6))  # fmt: skip


REFUSED: dict[str, tuple[Callable[[], nn.Module], tuple[str, ...]]] = {
    "grouped": (lambda: nn.Sequential(*_stem(), *_conv(8, 8, 2), *_head(8 * 4 * 4)),
                ("(op type Conv)", "grouped convolution (2 groups of 4 channels)", "groups=channels")),
    "channel-multiplier": (lambda: nn.Sequential(*_stem(), *_conv(8, 16, 8), *_head(16 * 4 * 4)),
                           ("(op type Conv)", "channel multiplier 2", "pointwise")),
    "unquantized-avgpool": (lambda: nn.Sequential(*_stem(), nn.AvgPool2d(2), *_head(8 * 3 * 3)),
                            ("(op type AveragePool)", "not quantized", "TruncAvgPool2d")),
    "sigmoid": (_sigmoid, ("(op type Sigmoid)", "no hardware layer for a sigmoid")),
    "squeeze-excitation": (_Gate, ("(op type Mul", "multiplies two streams", "squeeze-and-excitation")),
}  # fmt: skip


@pytest.mark.parametrize("name", list(REFUSED))
def test_lightweight_layer_without_mapping_is_refused_by_node(capsys, tmp_path: Path, name: str) -> None:
    make, needles = REFUSED[name]
    torch.manual_seed(0)
    export(_calibrated(make(), (3, 8, 8), 0), float_images((3, 8, 8), 3), tmp_path / "src")
    capsys.readouterr()
    code = main(["build", str(tmp_path / "src" / "model.onnx"), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("bnnflow:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    for needle in needles:
        assert needle in errors[0], errors[0]
    # Nothing half-written: no report, no folded model, no RTL; the step checkpoints written are whole files.
    assert not (tmp_path / "b" / "estimates.json").exists() and not (tmp_path / "b" / "rtl").exists()
    assert not list((tmp_path / "b").rglob("*.tmp*"))
