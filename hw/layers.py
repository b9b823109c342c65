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
    "bnn_thresholding": 0,
    "bnn_dwc": 1,  # a skid buffer in front (for a ratio that is not whole; whole ones have none: generate.py)
    "bnn_label_select": 1,  # an input register
    "bnn_swg": 0,
    "bnn_pool": 0,
    "bnn_fmpad": 0,
    "bnn_fifo": 0,
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
    max_x = 1 if (xnor or _is_bipolar(idt)) else max(abs(idt.min()), abs(idt.max()))
    max_w = 1 if (xnor or _is_bipolar(wdt)) else max(abs(wdt.min()), abs(wdt.max()))
    bound = mw * max_x * max_w
    nthres, actval = 0, 0
    lo, hi = -bound, bound
    if thr is not None:
        nthres = thr.shape[1]
        actval = 0 if _is_bipolar(odt) else int(inst.get_nodeattr("ActVal"))
        lo, hi = min(lo, int(thr.min()), actval), max(hi, int(thr.max()), actval + nthres)
    accbits = signed_bits(lo, hi) + 1
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
    if thr is not None:
        tcodes = thr & ((1 << accbits) - 1)
        tblocks = tcodes.reshape(nf, pe * nthres)
        memories[f"{node.name}_thresholds.mem"] = pack_words(tblocks, accbits)
        obits = odt.bitwidth()
        out = _stream(odt, pe, nf * vectors)
    else:
        # The raw accumulator leaves the layer. FINN's accDataType can be too narrow for it (INT7 for a
        # 64-input XNOR popcount, whose range is 0..64), so it is used only when it holds the true range.
        adt = _dt(inst, "accDataType")
        lo, hi = (0, mw) if xnor else accumulator_range(weights, idt)
        if adt.min() <= lo and hi <= adt.max():
            out = _stream(adt, pe, nf * vectors)
        elif lo >= 0:
            out = StreamFormat(max(1, hi.bit_length()), pe, nf * vectors, False, False)
        else:
            out = StreamFormat(signed_bits(lo, hi), pe, nf * vectors, True, False)
        obits = out.bits
    params: dict[str, int | str] = {
        "MW": mw, "MH": mh, "PE": pe, "SIMD": simd, "IBITS": 1 if xnor else idt.bitwidth(), "WBITS": wbits,
        "ACCBITS": accbits, "OBITS": obits, "XNOR": xnor, "I_SIGNED": int(idt.signed() and not _is_bipolar(idt)),
        "I_BIPOLAR": int(_is_bipolar(idt) and not xnor), "W_SIGNED": int(wdt.signed() and not _is_bipolar(wdt)),
        "W_BIPOLAR": int(_is_bipolar(wdt) and not xnor), "NTHRES": nthres, "ACTVAL": actval,
        "WEIGHT_FILE": f"{node.name}_weights.mem",
        "THRESH_FILE": f"{node.name}_thresholds.mem" if nthres else "",
    }  # fmt: skip
    if xnor:
        params["W_SIGNED"] = 0
    module = "bnn_mvau"
    if use_sparse:
        module = "bnn_mvau_sparse"
        params["STEPS"] = schedule_steps(kept)
        params["SCHED_FILE"] = f"{node.name}_schedule.mem"
    cycles = vector_cycles(kept) * vectors
    return LayerRTL(node.name, module, params, _stream(idt, simd, sf * vectors), out, cycles, memories)


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
    c, simd = inst.get_nodeattr("IFMChannels"), inst.get_nodeattr("SIMD")
    par = int(inst.get_nodeattr("parallel_window"))
    if inst.get_nodeattr("M") != 1 or inst.get_nodeattr("is1D") or (par and simd != c):
        raise BnnflowError(f"layer '{node.name}': only 2D, M=1 sliding windows (parallel only with SIMD = C) have RTL")
    (h, w), (oh, ow) = inst.get_nodeattr("IFMDim"), inst.get_nodeattr("OFMDim")
    (kh, kw), (sh, sw) = inst.get_nodeattr("ConvKernelDim"), inst.get_nodeattr("Stride")
    dh, dw = inst.get_nodeattr("Dilation")
    idt = _dt(inst, "inputDataType")
    params: dict[str, int | str] = {
        "BITS": idt.bitwidth(), "SIMD": simd, "C": c, "H": h, "W": w, "KH": kh, "KW": kw, "SH": sh, "SW": sw,
        "DH": dh, "DW": dw, "OH": oh, "OW": ow, "PAR": par,
    }  # fmt: skip
    in_words = h * w * c // simd
    out_elems = simd * (kh * kw if par else 1)
    out_words = oh * ow * kh * kw * c // out_elems
    return LayerRTL(node.name, "bnn_swg", params, _stream(idt, simd, in_words), _stream(idt, out_elems, out_words),
                    max(in_words, out_words))  # fmt: skip


def pool(model: Any, node: Any, inst: Any) -> LayerRTL:
    if inst.get_nodeattr("Function") != "MaxPool":
        raise BnnflowError(f"layer '{node.name}': only MaxPool has RTL (got {inst.get_nodeattr('Function')})")
    c, pe = inst.get_nodeattr("Channels"), inst.get_nodeattr("PE")
    kh, kw = inst.get_nodeattr("KernelSize")
    pixels = int(np.prod(inst.get_nodeattr("OutImgDims"))) * int(inst.get_nodeattr("BatchSize"))
    idt = _dt(inst, "InputDataType")
    params: dict[str, int | str] = {
        "BITS": idt.bitwidth(), "SIGNED": int(idt.signed() and not _is_bipolar(idt)), "C": c, "PE": pe, "K2": kh * kw
    }  # fmt: skip
    in_words = pixels * kh * kw * c // pe
    return LayerRTL(node.name, "bnn_pool", params, _stream(idt, pe, in_words), _stream(idt, pe, pixels * c // pe),
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


LAYERS: dict[str, Callable[[Any, Any, Any], LayerRTL]] = {
    "ConvolutionInputGenerator": swg,
    "Pool": pool,
    "FMPadding": fmpadding,
    "MVAU": mvau,
    "Thresholding": thresholding,
    "LabelSelect": label_select,
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
