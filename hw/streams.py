"""Test data as stream words: a graph's inputs and outputs packed the way its accelerator's ports carry them."""

from __future__ import annotations

from typing import Any

import numpy as np

from bnnflow.errors import BnnflowError
from bnnflow.hw.layers import StreamFormat, encode, pack_words


def input_words(model: Any, inputs: np.ndarray, fmt: StreamFormat) -> list[str]:
    """The accelerator's input words for `inputs` (as the accelerator graph consumes them)."""
    from qonnx.core.datatype import DataType

    idt = model.get_tensor_datatype(model.graph.input[0].name) or DataType["FLOAT32"]
    flat = inputs.reshape(len(inputs), -1)
    if not np.all(flat == np.round(flat)):
        raise BnnflowError(
            "the accelerator's inputs are not integers; rebuild with --input-datatype and --input-scale "
            "to say how the data arrive"
        )
    codes = encode(np.rint(flat).astype(np.int64), idt)
    return pack_words(codes.reshape(-1, fmt.elems), fmt.bits)


def output_words(model: Any, outputs: np.ndarray, fmt: StreamFormat) -> list[str]:
    """The accelerator's output words for integer `outputs` (one flattened row per frame)."""
    from qonnx.core.datatype import DataType

    odt = model.get_tensor_datatype(model.graph.output[0].name) or DataType["FLOAT32"]
    flat = np.asarray(outputs).reshape(len(outputs), -1)
    if not np.all(flat == np.round(flat)):
        raise BnnflowError("the accelerator's outputs are not integers; its RTL cannot carry them")
    codes = encode(np.rint(flat).astype(np.int64), odt)
    return pack_words(codes.reshape(-1, fmt.elems), fmt.bits)
