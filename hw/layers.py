"""RTL parameters for each FINN hardware layer of a folded dataflow graph, and its memory contents.

Python only computes parameters and memory words here; the layers themselves are hand-written
SystemVerilog in hw/rtl/, and the top level is rendered from hw/templates/.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bnnflow.dataflow.estimate import sparse_cycles
from bnnflow.errors import BnnflowError
from bnnflow.tiles import is_sparse, kept_tiles, schedule, schedule_steps, tile_mask, vector_cycles


@dataclass(frozen=True)
class StreamFormat:
    """How one stream carries a tensor: `elems` values of `bits` each per word (element 0 in the LSBs)."""

    bits: int
    elems: int  # elements per word
    words: int  # words per frame
    signed: bool
    bipolar: bool

    @property
    def width(self) -> int:
        return self.bits * self.elems

    def to_dict(self) -> dict[str, Any]:
        return {"bits": self.bits, "elems": self.elems, "words": self.words, "signed": self.signed,
                "bipolar": self.bipolar}  # fmt: skip


# Register stages between a module's input and its output register (see each module's header in hw/rtl/): its
# outputs leave this many cycles later than those of a module registering its result straight from its input.
# Latency only: every module still takes a word per cycle (the stages share one stall), so the II is unchanged.
PIPELINE_STAGES: dict[str, int] = {
    "bnn_mvau": 4,  # operands and weight read, weight-RAM output register, partial sums, accumulator
    "bnn_mvau_sparse": 4,  # as bnn_mvau
    "bnn_vvau": 4,  # as bnn_mvau
    "bnn_thresholding": 0,
    "bnn_dwc": 1,  # a skid buffer in front (for a ratio that is not whole; whole ones have none: generate.py)
    "bnn_label_select": 1,  # an input register
    "bnn_swg": 0,  # the read address waits in a register: a frame's first word is read once its last is written
    "bnn_pool": 0,  # a window's result is loaded with its last word, beside the running value
    "bnn_fmpad": 0,
    "bnn_fifo": 0,
    "bnn_global_acc_pool": 0,
    "bnn_channelwise": 0,
}
FROM_MODULE = -1  # LayerRTL.pipeline_stages: the module's PIPELINE_STAGES entry


@dataclass
class LayerRTL:
    """One instance in the generated top level."""

    name: str
    module: str
    params: dict[str, int | str]
    instream: StreamFormat
    outstream: StreamFormat
    expected_cycles: int
    memories: dict[str, list[str]] = field(default_factory=dict)  # file name -> hex lines
    # Extra cycles of latency (see PIPELINE_STAGES). Resolved from the module when not given, so that instances
    # built elsewhere (width converters, records read back from a manifest) carry it too.
    pipeline_stages: int = FROM_MODULE

    def __post_init__(self) -> None:
        if self.pipeline_stages == FROM_MODULE:
            if self.module not in PIPELINE_STAGES:
                raise BnnflowError(f"layer '{self.name}': no pipeline depth known for module {self.module}")
            self.pipeline_stages = PIPELINE_STAGES[self.module]


def _dt(inst: Any, attr: str) -> Any:
    from qonnx.core.datatype import DataType

    return DataType[inst.get_nodeattr(attr)]


def _is_bipolar(dt: Any) -> bool:
    return bool(dt.name == "BIPOLAR")


def encode(values: np.ndarray, dt: Any) -> np.ndarray:
    """Integer values to their stream codes: bipolar -1/+1 as 0/1, others two's complement in dt's width."""
    v = np.asarray(values).astype(np.int64)
    if _is_bipolar(dt):
        return ((v + 1) // 2).astype(np.int64)
    return v & ((1 << dt.bitwidth()) - 1)


def decode(codes: np.ndarray, bits: int, signed: bool, bipolar: bool) -> np.ndarray:
    c = np.asarray(codes).astype(np.int64)
    if bipolar:
        return 2 * c - 1
    if signed:
        return np.where(c >= (1 << (bits - 1)), c - (1 << bits), c)
    return c


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def pack_words(codes: np.ndarray, bits: int) -> list[str]:
    """Rows of element codes to hex words (element 0 in the least significant bits), zero-padded to the word's
    width in hex digits."""
    codes = np.asarray(codes, dtype=np.int64)
    rows, elems = codes.shape
    width = bits * elems
    digits = max(1, (width + 3) // 4)
    # Little-endian bit matrix of every word, padded to whole hex digits, then 4 bits to a digit.
    shifts = np.arange(bits, dtype=np.int64)
    bitmat = ((codes[:, :, None] >> shifts) & 1).astype(np.uint8).reshape(rows, width)
    bitmat = np.pad(bitmat, ((0, 0), (0, digits * 4 - width)))
    nibbles = (bitmat.reshape(rows, digits, 4) << np.arange(4, dtype=np.uint8)).sum(axis=2, dtype=np.uint8)
    chars = np.ascontiguousarray(_HEX[nibbles[:, ::-1]])  # most significant digit first
    return [w.decode("ascii") for w in chars.view(f"S{digits}").reshape(rows)]


def unpack_words(words: list[str], bits: int, elems: int) -> np.ndarray:
    """Hex words to rows of `elems` element codes of `bits` bits (element 0 in the least significant bits)."""
    if not words:
        return np.zeros((0, elems), dtype=np.int64)
    digits = max(1, (bits * elems + 3) // 4, *(len(w) for w in words))
    raw = np.char.rjust(np.array([w.lower() for w in words], dtype=f"S{digits}"), digits, b"0")
    chars = raw.view(np.uint8).reshape(len(words), digits)
    nibbles = np.where(chars >= ord("a"), chars - ord("a") + 10, chars - ord("0")).astype(np.uint8)[:, ::-1]
    bitmat = ((nibbles[:, :, None] >> np.arange(4, dtype=np.uint8)) & 1).reshape(len(words), digits * 4)
    fields = bitmat[:, : bits * elems].reshape(len(words), elems, bits).astype(np.int64)
    return (fields << np.arange(bits, dtype=np.int64)).sum(axis=2)


def signed_bits(lo: int, hi: int) -> int:
    """Width of a two's complement number holding every integer in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def _stream(dt: Any, elems: int, words: int) -> StreamFormat:
    return StreamFormat(dt.bitwidth(), elems, words, bool(dt.signed()) and not _is_bipolar(dt), _is_bipolar(dt))


def _thresholds(model: Any, node: Any, rows: int) -> np.ndarray:
    thr = model.get_initializer(node.input[-1]).astype(np.float64)
    if not np.all(thr == np.round(thr)):
        raise BnnflowError(f"layer '{node.name}': thresholds are not integers; run minimize_bit_width first")
    thr = np.rint(thr).astype(np.int64)
    return np.broadcast_to(thr, (rows, thr.shape[-1])) if thr.shape[0] == 1 else thr


def accumulator_range(weights: np.ndarray, idt: Any) -> tuple[int, int]:
    """The exact range of W^T x over all inputs x of type idt, for these integer weights (MW x MH): what FINN's
    MinimizeAccumulatorWidth sizes the accumulator for, so that a raw accumulator stream has FINN's width."""
    xlo, xhi = (-1, 1) if _is_bipolar(idt) else (int(idt.min()), int(idt.max()))
    w = np.asarray(weights, dtype=np.int64)
    lo = np.minimum(w * xlo, w * xhi).sum(axis=0)
    hi = np.maximum(w * xlo, w * xhi).sum(axis=0)
    return int(lo.min()), int(hi.max())


@dataclass
class MacOutput:
    """What a matrix- or vector-vector unit's shared compute core needs besides its operands: the accumulator and
    threshold width, the thresholds' memory, and the output stream (thresholded, or the raw accumulator)."""

    accbits: int
    nthres: int
    actval: int
    out: StreamFormat
    memories: dict[str, list[str]]


def mac_output(
    name: str,
    inst: Any,
    weights: np.ndarray,
    thr: np.ndarray | None,
    xnor: int,
    idt: Any,
    wdt: Any,
    odt: Any,
    pe: int,
    words: int,
) -> MacOutput:
    """weights (fan-in, rows): integer weights, each row's dot product sums its column; thr (rows, NTHRES) or None
    (the raw accumulator leaves the layer); `words` output words per frame of PE elements."""
    fanin, rows = weights.shape
    max_x = 1 if (xnor or _is_bipolar(idt)) else max(abs(idt.min()), abs(idt.max()))
    max_w = 1 if (xnor or _is_bipolar(wdt)) else max(abs(wdt.min()), abs(wdt.max()))
    bound = fanin * max_x * max_w
    nthres, actval = 0, 0
    lo, hi = -bound, bound
    if thr is not None:
        nthres = thr.shape[1]
        actval = 0 if _is_bipolar(odt) else int(inst.get_nodeattr("ActVal"))
        # Thresholds outside the accumulator's range (a neuron that never or always fires) keep their value: the
        # compare is made wide enough for them rather than clipping them into the range.
        lo, hi = min(lo, int(thr.min()), actval), max(hi, int(thr.max()), actval + nthres)
    accbits = signed_bits(lo, hi) + 1
    memories: dict[str, list[str]] = {}
    if thr is not None:
        tcodes = thr & ((1 << accbits) - 1)
        memories[f"{name}_thresholds.mem"] = pack_words(tcodes.reshape(rows // pe, pe * nthres), accbits)
        return MacOutput(accbits, nthres, actval, _stream(odt, pe, words), memories)
    # The raw accumulator leaves the layer. FINN's accDataType can be too narrow for it (INT7 for a 64-input XNOR
    # popcount, whose range is 0..64), so it is used only when it holds the true range.
    adt = _dt(inst, "accDataType")
    lo, hi = (0, fanin) if xnor else accumulator_range(weights, idt)
    if adt.min() <= lo and hi <= adt.max():
        out = _stream(adt, pe, words)
    elif lo >= 0:
        out = StreamFormat(max(1, hi.bit_length()), pe, words, False, False)
    else:
        out = StreamFormat(signed_bits(lo, hi), pe, words, True, False)
    return MacOutput(accbits, nthres, actval, out, memories)


def mvau(model: Any, node: Any, inst: Any, sparse: Mapping[str, int] | None = None) -> LayerRTL:
    """sparse: the layers that run a sparse schedule (dataflow.estimate.sparse_cycles of the model), computed here
    when not given."""
    mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
    pe, simd = inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")
    idt, wdt, odt = _dt(inst, "inputDataType"), _dt(inst, "weightDataType"), _dt(inst, "outputDataType")
    xnor = int(inst.get_nodeattr("binaryXnorMode"))
    no_act = int(inst.get_nodeattr("noActivation"))
    weights = np.rint(model.get_initializer(node.input[1])).astype(np.int64)  # (MW, MH)
    sf, nf = mw // simd, mh // pe
    vectors = int(np.prod(inst.get_nodeattr("numInputVectors")))
    # Pruned fold tiles (all-zero PE x SIMD blocks, see bnnflow.tiles) are neither stored nor visited.
    kept = kept_tiles(weights.T, pe, simd) if not xnor else np.ones((nf, sf), dtype=bool)
    if sparse is None:
        sparse = sparse_cycles(model)
    use_sparse = is_sparse(kept) and node.name in sparse  # where the II needs it, as estimated
    if not use_sparse:
        kept = np.ones((nf, sf), dtype=bool)
    thr = _thresholds(model, node, mh) if not no_act else None
    if use_sparse and _xnor_in_kept_tiles(weights, kept, idt, pe, simd) and thr is not None:
        # Bipolar data times weights that are +-1 wherever a tile is kept: XNOR-popcount over the kept tiles,
        # as FINN does for dense binary layers. sum = 2 * popcount - K_r for the K_r kept columns of row r,
        # so sum >= T  <=>  popcount >= ceil((T + K_r) / 2).
        thr = xnor_thresholds(thr, kept, pe, simd)
        weights = (weights > 0).astype(np.int64)
        xnor = 1
    wcodes = encode(weights, wdt) if not xnor else weights
    wbits = 1 if xnor else wdt.bitwidth()
    # word nf*SF+sf: W[nf*PE+p][sf*SIMD+s] at element p*SIMD+s
    blocks = wcodes.T.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe * simd)
    mac = mac_output(node.name, inst, weights, thr, xnor, idt, wdt, odt, pe, nf * vectors)
    memories: dict[str, list[str]] = {}
    if use_sparse:
        steps = schedule(kept)
        sfw = max(1, (sf - 1).bit_length())
        zero = np.zeros(pe * simd, dtype=np.int64)
        memories[f"{node.name}_weights.mem"] = pack_words(
            np.array([blocks[n * sf + s] if valid else zero for n, s, valid, _ in steps]), wbits
        )
        memories[f"{node.name}_schedule.mem"] = pack_words(
            np.array([[s | (int(last) << sfw) | (int(valid) << (sfw + 1))] for _, s, valid, last in steps]),
            sfw + 2,
        )
    else:
        memories[f"{node.name}_weights.mem"] = pack_words(blocks, wbits)
    memories.update(mac.memories)
    params: dict[str, int | str] = {"MW": mw, "MH": mh, **mac_params(node.name, mac, pe, simd, xnor, idt, wdt)}
    module = "bnn_mvau"
    if use_sparse:
        module = "bnn_mvau_sparse"
        params["STEPS"] = schedule_steps(kept)
        params["SCHED_FILE"] = f"{node.name}_schedule.mem"
    cycles = vector_cycles(kept) * vectors
    return LayerRTL(node.name, module, params, _stream(idt, simd, sf * vectors), mac.out, cycles, memories)


def mac_params(name: str, mac: MacOutput, pe: int, simd: int, xnor: int, idt: Any, wdt: Any) -> dict[str, int | str]:
    """The parameters that bnn_mvau, bnn_mvau_sparse and bnn_vvau share (their compute core's)."""
    return {
        "PE": pe, "SIMD": simd, "IBITS": 1 if xnor else idt.bitwidth(), "WBITS": 1 if xnor else wdt.bitwidth(),
        "ACCBITS": mac.accbits, "OBITS": mac.out.bits, "XNOR": xnor,
        "I_SIGNED": int(idt.signed() and not _is_bipolar(idt)), "I_BIPOLAR": int(_is_bipolar(idt) and not xnor),
        "W_SIGNED": int(wdt.signed() and not _is_bipolar(wdt) and not xnor),
        "W_BIPOLAR": int(_is_bipolar(wdt) and not xnor), "NTHRES": mac.nthres, "ACTVAL": mac.actval,
        "WEIGHT_FILE": f"{name}_weights.mem", "THRESH_FILE": f"{name}_thresholds.mem" if mac.nthres else "",
    }  # fmt: skip


def vvau(model: Any, node: Any, inst: Any) -> LayerRTL:
    """FINN's VectorVectorActivation (a depthwise convolution): per pixel and channel c, the dot product of c's
    KH*KW window with c's own kernel. Input words as FINN's depthwise sliding window emits them: per pixel, C/PE
    channel folds of K/SIMD words of SIMD kernel positions x PE channels (channel innermost)."""
    c, pe, simd = inst.get_nodeattr("Channels"), inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")
    kh, kw = inst.get_nodeattr("Kernel")
    k = kh * kw
    idt, wdt, odt = _dt(inst, "inputDataType"), _dt(inst, "weightDataType"), _dt(inst, "outputDataType")
    # FINN's VVAU counts matches whenever data and weights are both bipolar (its thresholds are then popcounts),
    # whatever its binaryXnorMode says.
    xnor = int(_is_bipolar(idt) and _is_bipolar(wdt))
    pixels = int(np.prod(inst.get_nodeattr("Dim")))
    weights = np.rint(model.get_initializer(node.input[1])).astype(np.int64).reshape(c, k)  # (C, 1, KH, KW)
    if xnor:
        weights = (weights > 0).astype(np.int64)
    thr = _thresholds(model, node, c) if not int(inst.get_nodeattr("noActivation")) else None
    sf, nf = k // simd, c // pe
    mac = mac_output(node.name, inst, weights.T, thr, xnor, idt, wdt, odt, pe, nf * pixels)
    wcodes = weights if xnor else encode(weights, wdt)
    # word nf*SF+sf: W[nf*PE+p][sf*SIMD+s] at element p*SIMD+s
    blocks = wcodes.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe * simd)
    memories = {f"{node.name}_weights.mem": pack_words(blocks, 1 if xnor else wdt.bitwidth()), **mac.memories}
    params: dict[str, int | str] = {"C": c, "K": k, **mac_params(node.name, mac, pe, simd, xnor, idt, wdt)}
    words = pixels * nf * sf
    return LayerRTL(node.name, "bnn_vvau", params, _stream(idt, simd * pe, words), mac.out, words, memories)


def xnor_thresholds(thr: np.ndarray, kept: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """Thresholds on the +-1 sum over a row's kept columns, re-based to its popcount of matches.

    Row r sums K_r = SIMD * (kept tiles of its row fold) terms of +-1: sum = 2 * popcount - K_r, and the
    pruned columns add nothing (their weight is 0, not -1). sum >= T  <=>  popcount >= ceil((T + K_r) / 2).
    """
    k_rows = np.repeat(np.asarray(kept, dtype=bool).sum(axis=1) * simd, pe)[:, None]
    return np.asarray(-((-(np.asarray(thr, dtype=np.int64) + k_rows)) // 2))


def _xnor_in_kept_tiles(weights: np.ndarray, kept: np.ndarray, idt: Any, pe: int, simd: int) -> bool:
    """Bipolar input, and every weight of every kept tile is -1 or +1."""
    if not _is_bipolar(idt):
        return False
    in_kept = tile_mask(kept, pe, simd)
    w = weights.T
    return bool(np.all(np.abs(w[in_kept]) == 1))


def thresholding(model: Any, node: Any, inst: Any) -> LayerRTL:
    c, pe = inst.get_nodeattr("NumChannels"), inst.get_nodeattr("PE")
    idt, odt = _dt(inst, "inputDataType"), _dt(inst, "outputDataType")
    thr = _thresholds(model, node, c)
    nthres = thr.shape[1]
    actval = 0 if _is_bipolar(odt) else int(inst.get_nodeattr("ActVal"))
    tbits = signed_bits(min(int(thr.min()), idt.min(), actval), max(int(thr.max()), idt.max(), actval + nthres)) + 1
    memories = {f"{node.name}_thresholds.mem": pack_words((thr & ((1 << tbits) - 1)).reshape(c // pe, pe * nthres),
                                                          tbits)}  # fmt: skip
    frames = int(np.prod(inst.get_normal_input_shape()[:-1]))
    params: dict[str, int | str] = {
        "C": c, "PE": pe, "IBITS": idt.bitwidth(), "I_SIGNED": int(idt.signed()), "TBITS": tbits,
        "OBITS": odt.bitwidth(), "NTHRES": nthres, "ACTVAL": actval, "THRESH_FILE": f"{node.name}_thresholds.mem",
    }  # fmt: skip
    words = frames * c // pe
    return LayerRTL(node.name, "bnn_thresholding", params, _stream(idt, pe, words), _stream(odt, pe, words), words,
                    memories)  # fmt: skip


def follow_input(layer: LayerRTL, source: StreamFormat) -> LayerRTL:
    """A label select reads whatever its producer emits (see mvau: the accumulator may be widened)."""
    if layer.module != "bnn_label_select":
        return layer
    params = {**layer.params, "IBITS": source.bits, "I_SIGNED": int(source.signed)}
    instream = StreamFormat(source.bits, layer.instream.elems, layer.instream.words, source.signed, False)
    return LayerRTL(layer.name, layer.module, params, instream, layer.outstream, layer.expected_cycles)


def label_select(model: Any, node: Any, inst: Any) -> LayerRTL:
    labels, pe = inst.get_nodeattr("Labels"), inst.get_nodeattr("PE")
    if inst.get_nodeattr("K") != 1:
        raise BnnflowError(f"layer '{node.name}': only top-1 label selection has RTL (K={inst.get_nodeattr('K')})")
    idt, odt = _dt(inst, "inputDataType"), _dt(inst, "outputDataType")
    params: dict[str, int | str] = {
        "LABELS": labels, "PE": pe, "IBITS": idt.bitwidth(), "I_SIGNED": int(idt.signed()), "OBITS": odt.bitwidth()
    }  # fmt: skip
    return LayerRTL(node.name, "bnn_label_select", params, _stream(idt, pe, labels // pe), _stream(odt, 1, 1),
                    labels // pe)  # fmt: skip


def swg(model: Any, node: Any, inst: Any) -> LayerRTL:
    """FINN's ConvolutionInputGenerator: windows in im2col order, or in its depthwise order (`depthwise`, what a
    pool or a vector-vector unit reads). A 1D window (`is1D`: H = 1 or W = 1) is the same generator: FINN executes
    every one as Im2Col of the image as it is."""
    c, simd = inst.get_nodeattr("IFMChannels"), inst.get_nodeattr("SIMD")
    par, depthwise = int(inst.get_nodeattr("parallel_window")), int(inst.get_nodeattr("depthwise"))
    (h, w), (oh, ow) = inst.get_nodeattr("IFMDim"), inst.get_nodeattr("OFMDim")
    (kh, kw), (sh, sw) = inst.get_nodeattr("ConvKernelDim"), inst.get_nodeattr("Stride")
    dh, dw = inst.get_nodeattr("Dilation")
    types = inst.get_nodeattr_types()
    if ("M" in types and inst.get_nodeattr("M") != 1) or inst.get_nodeattr("dynamic_mode"):
        raise BnnflowError(f"layer '{node.name}': only M=1 sliding windows over a fixed image size have RTL")
    if par and simd != c and not depthwise and kh * kw != 1:  # FINN's own rule (select_impl_style)
        raise BnnflowError(f"layer '{node.name}': a parallel window needs SIMD = C ({simd} != {c}) unless depthwise")
    idt = _dt(inst, "inputDataType")
    params: dict[str, int | str] = {
        "BITS": idt.bitwidth(), "SIMD": simd, "C": c, "H": h, "W": w, "KH": kh, "KW": kw, "SH": sh, "SW": sw,
        "DH": dh, "DW": dw, "OH": oh, "OW": ow, "PAR": par, "DEPTHWISE": depthwise,
    }  # fmt: skip
    in_words = h * w * c // simd
    out_elems = simd * (kh * kw if par else 1)
    out_words = oh * ow * kh * kw * c // out_elems
    return LayerRTL(node.name, "bnn_swg", params, _stream(idt, simd, in_words), _stream(idt, out_elems, out_words),
                    max(in_words, out_words))  # fmt: skip


def pool(model: Any, node: Any, inst: Any) -> LayerRTL:
    """FINN's Pool over windows in its depthwise order (PE channels at a time, FINN's InferPool and SetFolding
    make the generator in front so). Sums are FINN's execution: QuantAvgPool shifts right by the shift its
    execute_node computes. AvgPool is a shift too, so only over a power-of-two window: the floor of the mean (FINN
    executes np.mean, whose fractions its own datatype check refuses; integer thresholds after it see no
    difference)."""
    from qonnx.custom_op.registry import getCustomOp

    from bnnflow.dataflow.fold import base_op_type

    fn, c, pe = inst.get_nodeattr("Function"), inst.get_nodeattr("Channels"), inst.get_nodeattr("PE")
    kh, kw = inst.get_nodeattr("KernelSize")
    k2 = kh * kw
    pixels = int(np.prod(inst.get_nodeattr("OutImgDims"))) * int(inst.get_nodeattr("BatchSize"))
    idt, odt = _dt(inst, "InputDataType"), _dt(inst, "OutputDataType")
    shift = 0
    if fn == "QuantAvgPool":
        shift = max(0, ((2 ** idt.bitwidth() - 1) * k2).bit_length() - odt.bitwidth())  # as FINN's execute_node
        if inst.get_nodeattr("Size") != shift:
            raise BnnflowError(f"layer '{node.name}': QuantAvgPool shift Size={inst.get_nodeattr('Size')} differs "
                               f"from the {shift} FINN executes for {idt.name} -> {odt.name}")  # fmt: skip
    elif fn == "AvgPool":
        if k2 & (k2 - 1):
            raise BnnflowError(f"layer '{node.name}': AvgPool has RTL only over a power-of-two window (got {kh}x{kw})")
        shift = k2.bit_length() - 1
    elif fn not in ("MaxPool", "AccPool"):
        raise BnnflowError(f"layer '{node.name}': pool function {fn} has no RTL")
    if fn != "MaxPool":
        lo, hi = (-1, 1) if _is_bipolar(idt) else (int(idt.min()), int(idt.max()))
        lo, hi = (k2 * lo) >> shift, (k2 * hi) >> shift
        if not _holds(odt, lo, hi):
            raise BnnflowError(f"layer '{node.name}': {fn} results span [{lo}, {hi}], beyond its output type "
                               f"{odt.name}")  # fmt: skip
    # The stream in front must hold each window PE channels at a time; im2col order is that for PE = C.
    producer = model.find_producer(node.input[0])
    fold = c
    if producer is not None and base_op_type(producer.op_type) == "ConvolutionInputGenerator":
        src = getCustomOp(producer)
        fold = src.get_nodeattr("SIMD") if src.get_nodeattr("depthwise") else c
    if k2 > 1 and fold != pe:
        raise BnnflowError(f"layer '{node.name}': reads windows {pe} channels at a time (PE) but its input holds "
                           f"them {fold} at a time; give the depthwise sliding window in front SIMD={pe}")  # fmt: skip
    params: dict[str, int | str] = {
        "BITS": idt.bitwidth(), "OBITS": odt.bitwidth(), "SIGNED": int(idt.signed() and not _is_bipolar(idt)),
        "BIPOLAR": int(_is_bipolar(idt)), "PE": pe, "K2": k2, "FUNC": "max" if fn == "MaxPool" else "sum",
        "SHIFT": shift,
    }  # fmt: skip
    in_words = pixels * k2 * c // pe
    return LayerRTL(node.name, "bnn_pool", params, _stream(idt, pe, in_words), _stream(odt, pe, pixels * c // pe),
                    in_words)  # fmt: skip


def fmpadding(model: Any, node: Any, inst: Any) -> LayerRTL:
    if "dynamic_mode" in inst.get_nodeattr_types() and inst.get_nodeattr("dynamic_mode"):
        raise BnnflowError(f"layer '{node.name}': padding reconfigured at run time (dynamic_mode) has no RTL")
    idt = _dt(inst, "inputDataType")
    if not idt.allowed(0):  # FINN pads with 0 too and refuses such types (get_input_datatype asserts)
        raise BnnflowError(f"layer '{node.name}': zero padding needs a datatype that holds 0 (got {idt.name})")
    (h, w), (pt, pl, pb, pr) = inst.get_nodeattr("ImgDim"), inst.get_nodeattr("Padding")  # Padding: T, L, B, R
    c, simd = inst.get_nodeattr("NumChannels"), inst.get_nodeattr("SIMD")
    images = int(np.prod(inst.get_nodeattr("numInputVectors")))
    params: dict[str, int | str] = {
        "BITS": idt.bitwidth(), "SIMD": simd, "C": c, "H": h, "W": w, "PT": pt, "PL": pl, "PB": pb, "PR": pr
    }  # fmt: skip
    in_words = images * h * w * c // simd
    out_words = images * (h + pt + pb) * (w + pl + pr) * c // simd
    # One output word per cycle: the same figure as FINN's get_exp_cycles.
    return LayerRTL(node.name, "bnn_fmpad", params, _stream(idt, simd, in_words), _stream(idt, simd, out_words),
                    out_words)  # fmt: skip


def _holds(dt: Any, lo: int, hi: int) -> bool:
    return bool(dt.is_integer() and not _is_bipolar(dt) and dt.min() <= lo and hi <= dt.max())


def global_acc_pool(model: Any, node: Any, inst: Any) -> LayerRTL:
    """Per image and channel, the sum over its H x W pixels (FINN's GlobalAccPool). Each output word leaves with
    the last pixel's input word, so a frame takes H * W * C/PE cycles: FINN's get_exp_cycles counts C/PE more
    (an output loop of its own in the HLS version), which this RTL does not take."""
    vectors = list(inst.get_nodeattr("numInputVectors"))
    if len(vectors) != 3:  # FINN's own output type and execution read [N, H, W] too
        raise BnnflowError(f"layer '{node.name}': GlobalAccPool needs numInputVectors [N, H, W] (got {vectors})")
    images, pixels = vectors[0], vectors[1] * vectors[2]
    c, pe = inst.get_nodeattr("NumChannels"), inst.get_nodeattr("PE")
    idt, odt = _dt(inst, "inputDataType"), inst.get_output_datatype()
    if not idt.is_integer():
        raise BnnflowError(f"layer '{node.name}': only integer inputs have RTL (got {idt.name})")
    lo, hi = pixels * int(idt.min()), pixels * int(idt.max())
    if not _holds(odt, lo, hi):  # FINN sizes it for the extreme value of one sign, too narrow for +-1 sums
        raise BnnflowError(f"layer '{node.name}': output type {odt.name} does not hold the sums ({lo} to {hi})")
    params: dict[str, int | str] = {
        "C": c, "PE": pe, "PIXELS": pixels, "IBITS": idt.bitwidth(),
        "I_SIGNED": int(idt.signed() and not _is_bipolar(idt)), "I_BIPOLAR": int(_is_bipolar(idt)),
        "OBITS": odt.bitwidth(),
    }  # fmt: skip
    in_words = images * pixels * c // pe
    return LayerRTL(node.name, "bnn_global_acc_pool", params, _stream(idt, pe, in_words),
                    _stream(odt, pe, images * c // pe), in_words)  # fmt: skip


# FINN's elementwise operations that bnn_channelwise computes, with its OP for (stream OP constant) and, where
# the order matters, for (constant OP stream).
ELEMENTWISE_OPS: dict[str, tuple[str, str]] = {
    "ElementwiseAdd": ("ADD", "ADD"),
    "ElementwiseSub": ("SUB", "RSUB"),
    "ElementwiseMul": ("MUL", "MUL"),
    "ElementwiseMax": ("MAX", "MAX"),
}


def _elementwise_result(op: str, x: int | np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.asarray({"ADD": lambda: x + p, "SUB": lambda: x - p, "RSUB": lambda: p - x, "MUL": lambda: x * p,
                       "MAX": lambda: np.maximum(x, p)}[op]())  # fmt: skip


def elementwise(model: Any, node: Any, inst: Any) -> LayerRTL:
    """FINN's ElementwiseAdd/Sub/Mul/Max of a streamed integer tensor and a constant that varies at most along the
    channel (last) axis: one constant per channel, a broadcast one expanded to all channels."""
    from bnnflow.dataflow.fold import base_op_type

    kind = base_op_type(node.op_type)
    if kind not in ELEMENTWISE_OPS:
        raise BnnflowError(f"layer '{node.name}' ({node.op_type}): only {', '.join(ELEMENTWISE_OPS)} have RTL")
    consts = [model.get_initializer(name) for name in node.input[:2]]
    if (consts[0] is None) == (consts[1] is None):
        raise BnnflowError(f"layer '{node.name}' ({node.op_type}): only one streamed and one constant input have RTL")
    stream_ix = 0 if consts[0] is None else 1
    op = ELEMENTWISE_OPS[kind][stream_ix]
    idt, odt = inst.get_input_datatype(stream_ix), inst.get_output_datatype()
    const = np.asarray(consts[1 - stream_ix], dtype=np.float64)
    if not idt.is_integer() or not np.all(const == np.round(const)):
        raise BnnflowError(f"layer '{node.name}' ({node.op_type}): float inputs or constants have no RTL")
    out_shape = [int(d) for d in inst.get_normal_output_shape()]
    if [int(d) for d in inst.get_normal_input_shape(stream_ix)] != out_shape:
        raise BnnflowError(f"layer '{node.name}' ({node.op_type}): a broadcast streamed input has no RTL")
    c, pe = out_shape[-1], inst.get_nodeattr("PE")
    if c % pe != 0:
        raise BnnflowError(f"layer '{node.name}': PE ({pe}) must divide the {c} channels")
    full = np.broadcast_to(np.rint(const).astype(np.int64), out_shape).reshape(-1, c)
    if not np.all(full == full[0]):
        raise BnnflowError(f"layer '{node.name}' ({node.op_type}): its constant varies along other axes than the "
                           "channel; only per-channel constants have RTL")  # fmt: skip
    p = full[0]
    ends = np.stack([_elementwise_result(op, int(idt.min()), p), _elementwise_result(op, int(idt.max()), p)])
    lo, hi = int(ends.min()), int(ends.max())
    if not _holds(odt, lo, hi):
        raise BnnflowError(f"layer '{node.name}': output type {odt.name} does not hold its results ({lo} to {hi})")
    pbits = signed_bits(int(p.min()), int(p.max()))
    params: dict[str, int | str] = {
        "C": c, "PE": pe, "IBITS": idt.bitwidth(), "I_SIGNED": int(idt.signed() and not _is_bipolar(idt)),
        "I_BIPOLAR": int(_is_bipolar(idt)), "PBITS": pbits, "OBITS": odt.bitwidth(), "OP": op,
        "PARAM_FILE": f"{node.name}_params.mem",
    }  # fmt: skip
    memories = {f"{node.name}_params.mem": pack_words((p & ((1 << pbits) - 1)).reshape(c // pe, pe), pbits)}
    words = int(np.prod(out_shape[:-1])) * c // pe  # one per cycle: FINN's get_exp_cycles
    return LayerRTL(node.name, "bnn_channelwise", params, _stream(idt, pe, words), _stream(odt, pe, words), words,
                    memories)  # fmt: skip


LAYERS: dict[str, Callable[[Any, Any, Any], LayerRTL]] = {
    "ConvolutionInputGenerator": swg,
    "Pool": pool,
    "FMPadding": fmpadding,
    "MVAU": mvau,
    "VVAU": vvau,
    "Thresholding": thresholding,
    "LabelSelect": label_select,
    "GlobalAccPool": global_acc_pool,
    **{kind: elementwise for kind in ELEMENTWISE_OPS},
}


def layer_rtl(model: Any, node: Any, sparse: Mapping[str, int] | None = None) -> LayerRTL:
    """The RTL instance of one hardware layer; `sparse` as for mvau (pass it when generating a whole design)."""
    from qonnx.custom_op.registry import getCustomOp

    from bnnflow.dataflow.fold import base_op_type

    kind = base_op_type(node.op_type)
    if kind not in LAYERS:
        raise BnnflowError(
            f"layer '{node.name}' ({node.op_type}) has no RTL in bnnflow yet; supported: {', '.join(LAYERS)}"
        )
    if kind == "MVAU":
        return mvau(model, node, getCustomOp(node), sparse)
    return LAYERS[kind](model, node, getCustomOp(node))
