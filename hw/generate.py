"""RTL generation: from a folded FINN dataflow graph to layer parameters, memory files and a stitched top."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bnnflow.artifacts import step_model_path
from bnnflow.dataflow.estimate import sparse_cycles
from bnnflow.errors import BnnflowError
from bnnflow.fileio import ensure_writable_dir, write_json, write_text
from bnnflow.hw.layers import LayerRTL, follow_input, layer_rtl
from bnnflow.render import render

TOP = "bnn_top"
MAX_FIFO_DEPTH = 4096
DESIGN_FILE = "design.json"
LIBRARY = (
    "bnn_fifo.sv",
    "bnn_dwc.sv",
    "bnn_mvau.sv",
    "bnn_mvau_sparse.sv",
    "bnn_thresholding.sv",
    "bnn_swg.sv",
    "bnn_pool.sv",
    "bnn_fmpad.sv",
    "bnn_label_select.sv",
)


@dataclass
class Design:
    """A generated accelerator: where its files are and how its streams are laid out."""

    rtl_dir: Path
    layers: list[LayerRTL]

    @property
    def sources(self) -> list[Path]:
        return [*library_files(), self.rtl_dir / f"{TOP}.sv"]


def library_files() -> list[Path]:
    """The hand-written layer library, from the installed package."""
    root = Path(str(resources.files("bnnflow.hw"))) / "rtl"
    return [root / name for name in LIBRARY]


def folded_model_path(build_dir: Path) -> Path:
    """The folded graph of a `bnnflow build` directory."""
    for step in ("estimate", "fold"):
        path = step_model_path(build_dir, step)
        if path.is_file():
            return path
    raise BnnflowError(f"{build_dir} holds no folded graph (intermediate/fold.onnx); run `bnnflow build` first")


def dataflow_layers(model: Any) -> list[Any]:
    nodes = list(model.graph.node)
    if not nodes or any(not n.domain.startswith("finn.custom_op.fpgadataflow") for n in nodes):
        others = sorted({n.op_type for n in nodes if not n.domain.startswith("finn.custom_op.fpgadataflow")})
        raise BnnflowError(f"not a dataflow partition (non-hardware ops: {', '.join(others) or 'none'}); "
                           "pass a build directory or its intermediate/fold.onnx")  # fmt: skip
    for a, b in itertools.pairwise(nodes):
        if model.find_consumers(a.output[0]) != [b]:
            raise BnnflowError(f"layer '{a.name}' does not feed '{b.name}' alone; only chains have RTL generation")
    return nodes


def with_width_converters(layers: list[LayerRTL]) -> list[LayerRTL]:
    """Insert a data-width converter wherever a layer's output word differs from the next one's input word."""
    out: list[LayerRTL] = []
    for layer in layers:
        if out:
            layer = follow_input(layer, out[-1].outstream)
        if out and out[-1].outstream.width != layer.instream.width:
            src, dst = out[-1].outstream, layer.instream
            if src.bits != dst.bits or (src.elems * src.words) != (dst.elems * dst.words):
                raise BnnflowError(
                    f"stream mismatch between '{out[-1].name}' ({src.words} x {src.elems} x {src.bits} bits) and "
                    f"'{layer.name}' ({dst.words} x {dst.elems} x {dst.bits} bits)"
                )
            params: dict[str, int | str] = {"BITS": src.bits, "IN": src.elems, "OUT": dst.elems}
            out.append(LayerRTL(f"DWC_{len(out)}", "bnn_dwc", params, src, dst, max(src.words, dst.words)))
        out.append(layer)
    return out


def generate(model: Any, rtl_dir: Path, source: str = "", fifo_depth: int = 2) -> Design:
    """Write <rtl_dir>/bnn_top.sv, the memory files and design.json for a folded, specialized graph."""
    out = ensure_writable_dir(rtl_dir, "RTL directory")
    sparse = sparse_cycles(model)  # once for the whole design: it weighs every layer against the II
    layers = with_width_converters([layer_rtl(model, node, sparse) for node in dataflow_layers(model)])
    for layer in layers:
        for name, lines in layer.memories.items():
            write_text(out / name, "\n".join(lines) + "\n")
    # A FIFO that holds the consumer's whole input frame lets the producer run ahead while an MVAU replays
    # its buffered vector, so the chain reaches the slowest layer's rate (FINN sizes its FIFOs for the same).
    depths = [max(fifo_depth, min(MAX_FIFO_DEPTH, nxt.instream.words)) for nxt in layers[1:]] + [fifo_depth]
    top = render(
        "bnnflow.hw",
        "top.sv.j2",
        top=TOP,
        source=source,
        layers=layers,
        depths=depths,
        in_width=layers[0].instream.width,
        out_width=layers[-1].outstream.width,
    )
    write_text(out / f"{TOP}.sv", top)
    write_json(
        out / DESIGN_FILE,
        {
            "top": TOP,
            "library": list(LIBRARY),
            "input": layers[0].instream.to_dict(),
            "output": layers[-1].outstream.to_dict(),
            "layers": [
                {
                    "name": lyr.name,
                    "module": lyr.module,
                    "expected_cycles": lyr.expected_cycles,
                    "params": lyr.params,
                }
                for lyr in layers
            ],
        },
    )
    return Design(out, layers)
