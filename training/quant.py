"""Brevitas quantizer definitions for the BNN zoo: constant-scale, zero-point-free, FINN-streamlinable.

Weights and hidden activations follow the bnn_pynq recipe: a constant scale of 1.0, narrow range, so that
1 bit means {-1, +1} and 2 bits mean {-1, 0, +1}. The input quantizer of wider inputs (CNV's 8-bit pixels)
uses a power-of-two scale so that FINN can absorb it into thresholds exactly.
"""

from __future__ import annotations

from typing import Any

from brevitas.core.bit_width import BitWidthImplType
from brevitas.core.quant import QuantType
from brevitas.core.restrict_val import RestrictValueType
from brevitas.core.scaling import ScalingImplType
from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.inject import ExtendedInjector, value
from brevitas.inject.enum import FloatToIntImplType
from brevitas.quant.solver import ActQuantSolver, WeightQuantSolver


class _ConstScaleQuant(ExtendedInjector):
    bit_width_impl_type = BitWidthImplType.CONST
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    zero_point_impl = ZeroZeroPoint
    float_to_int_impl_type = FloatToIntImplType.ROUND
    scaling_per_output_channel = False
    narrow_range = True
    signed = True

    @value
    def quant_type(bit_width: int | None) -> Any:
        # One bit is a sign (bipolar) quantizer; FINN maps it to XNOR-popcount.
        if bit_width is None:
            return QuantType.FP
        if bit_width == 1:
            return QuantType.BINARY
        return QuantType.INT


class WeightQuant(_ConstScaleQuant, WeightQuantSolver):
    """Per-tensor weight quantizer with the range [-1, 1]."""

    scaling_const = 1.0


class ActQuant(_ConstScaleQuant, ActQuantSolver):
    """Signed activation quantizer with the range [-1, 1]."""

    min_val = -1.0
    max_val = 1.0


def input_quant_kwargs(bit_width: int) -> dict[str, Any]:
    """Keyword arguments for the QuantIdentity that quantizes the network input.

    One bit binarizes the (centred) pixels. More bits give a signed fixed-point grid with a power-of-two
    step 2**-(bits-1) over [-1, 1): the CNV input quantizer of bnn_pynq at 8 bits.
    """
    if bit_width == 1:
        return {"act_quant": ActQuant, "bit_width": 1}
    return {
        "act_quant": ActQuant,
        "bit_width": bit_width,
        "min_val": -1.0,
        "max_val": 1.0 - 2.0 ** (-(bit_width - 1)),
        "narrow_range": False,
        "restrict_scaling_type": RestrictValueType.POWER_OF_TWO,
    }
