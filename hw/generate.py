"""The hardware stage: from a folded FINN dataflow graph to one RTL directory (layer library, stitched top,
memory files) with a manifest whose hash every later report names."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bnnflow.artifacts import step_model_path
from bnnflow.dataflow.estimate import dataflow_latency, sparse_cycles
from bnnflow.errors import BnnflowError
from bnnflow.fileio import ensure_writable_dir, write_json, write_text
from bnnflow.hw.layers import PIPELINE_STAGES, LayerRTL, StreamFormat, follow_input, layer_rtl
from bnnflow.render import render

TOP = "bnn_top"
MAX_FIFO_DEPTH = 4096
FIFO_LATENCY = 2  # cycles from a word entering bnn_fifo to its registered output
MANIFEST_FILE = "manifest.json"
RTL_DIR = "rtl"  # inside a build directory
LIBRARY = (
    "bnn_fifo.sv",
    "bnn_dwc.sv",
    "bnn_adder_tree.sv",
    "bnn_count_ge.sv",
    "bnn_mac_core.sv",
    "bnn_mvau.sv",
    "bnn_mvau_sparse.sv",
    "bnn_vvau.sv",
    "bnn_thresholding.sv",
    "bnn_swg.sv",
    "bnn_pool.sv",
    "bnn_fmpad.sv",
    "bnn_label_select.sv",
    "bnn_global_acc_pool.sv",
    "bnn_channelwise.sv",
)

# The library modules each library module instantiates: their files come along wherever it is used.
SUBMODULES: dict[str, tuple[str, ...]] = {
    "bnn_mvau": ("bnn_mac_core",),
    "bnn_mvau_sparse": ("bnn_mac_core",),
    "bnn_vvau": ("bnn_mac_core",),
    "bnn_mac_core": ("bnn_adder_tree", "bnn_count_ge"),
    "bnn_count_ge": ("bnn_adder_tree",),
    "bnn_thresholding": ("bnn_count_ge",),
}


def with_submodules(modules: set[str]) -> set[str]:
    """`modules` and every library module they instantiate, directly or through another."""
    out: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module not in out:
            out.add(module)
            todo.extend(SUBMODULES.get(module, ()))
    return out


@dataclass(frozen=True)
class HwConfig:
    """Hardware parameters of the generated accelerator (they belong to the RTL, not to its simulation)."""

    fifo_depth: int = 2
    """Smallest depth of the FIFO after every layer (a FIFO that feeds a buffering layer holds its whole input
    frame, up to MAX_FIFO_DEPTH words)."""

    def validate(self) -> None:
        if not 2 <= self.fifo_depth <= MAX_FIFO_DEPTH:
            raise BnnflowError(f"FIFO depth {self.fifo_depth} out of range; choose 2 to {MAX_FIFO_DEPTH}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Design:
    """A generated accelerator: where its files are, how its streams are laid out, and the hash of its RTL."""

    rtl_dir: Path
    layers: list[LayerRTL]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def sources(self) -> list[Path]:
        if "sources" not in self.manifest:  # a hand-made top level over the installed library (tests)
            return [*library_files(), self.rtl_dir / f"{TOP}.sv"]
        return [self.rtl_dir / name for name in self.manifest["sources"]]

    @property
    def memories(self) -> list[Path]:
        return [self.rtl_dir / name for name in self.manifest.get("memories", [])]

    @property
    def rtl_hash(self) -> str:
        return str(self.manifest.get("hash", ""))

    @property
    def slowest(self) -> LayerRTL:
        return max(self.layers, key=lambda layer: layer.expected_cycles)


def library_files(names: tuple[str, ...] = LIBRARY) -> list[Path]:
    """Hand-written modules (by default the layer library) from the installed package."""
    root = Path(str(resources.files("bnnflow.hw"))) / "rtl"
    return [root / name for name in names]


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
            whole = src.elems % dst.elems == 0 or dst.elems % src.elems == 0  # bnn_dwc's shift-register cases
            out.append(LayerRTL(f"DWC_{len(out)}", "bnn_dwc", params, src, dst, max(src.words, dst.words),
                                pipeline_stages=0 if whole else PIPELINE_STAGES["bnn_dwc"]))  # fmt: skip
        out.append(layer)
    return out


def slow_label_select(layers: list[LayerRTL]) -> list[LayerRTL]:
    """Label selection with one value per word (PE = 1) takes two cycles per word where that keeps within the
    design's II: the running maximum's compare then has a cycle of its own, which the clock needs more than this
    layer needs the cycles."""
    ii = max(layer.expected_cycles for layer in layers)
    for layer in layers:
        if layer.module == "bnn_label_select" and layer.params["PE"] == 1 and 2 * layer.expected_cycles <= ii:
            layer.params["SLOW"] = 1
            layer.expected_cycles *= 2
    return layers


def generate(model: Any, rtl_dir: Path, source: str = "", cfg: HwConfig | None = None) -> Design:
    """Write a self-contained RTL directory for a folded, specialized graph: the library modules it uses,
    bnn_top.sv, the memory files and manifest.json (every file's SHA-256 and the hash of them all). The directory
    appears whole or not at all: it is written beside its destination and renamed into place."""
    cfg = cfg or HwConfig()
    cfg.validate()
    dest = Path(rtl_dir)
    ensure_writable_dir(dest.parent, "RTL directory")
    sparse = sparse_cycles(model)  # once for the whole design: it weighs every layer against the II
    layers = slow_label_select(
        with_width_converters([layer_rtl(model, node, sparse) for node in dataflow_layers(model)])
    )
    # The RTL's first-frame latency: FINN's, plus what its pipeline registers and FIFOs add on the way.
    latency = dataflow_latency(model) + sum(layer.pipeline_stages + FIFO_LATENCY for layer in layers)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-", suffix=".tmp"))
    try:
        _write_design(tmp, layers, source, cfg, latency)
        _replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return load_design(dest)


def _write_design(out: Path, layers: list[LayerRTL], source: str, cfg: HwConfig, latency: int) -> None:
    memories: list[str] = []
    for layer in layers:
        for name, lines in layer.memories.items():
            write_text(out / name, "\n".join(lines) + "\n")
            memories.append(name)
    # A FIFO that holds the consumer's whole input frame lets the producer run ahead while an MVAU replays
    # its buffered vector, so the chain reaches the slowest layer's rate (FINN sizes its FIFOs for the same).
    depth = cfg.fifo_depth
    depths = [max(depth, min(MAX_FIFO_DEPTH, nxt.instream.words)) for nxt in layers[1:]] + [depth]
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
    used = with_submodules({"bnn_fifo"} | {layer.module for layer in layers})
    library = [path for path in library_files() if path.stem in used]
    for path in library:
        shutil.copyfile(path, out / path.name)
    write_text(out / f"{TOP}.sv", top)
    sources = [path.name for path in library] + [f"{TOP}.sv"]
    files = {name: _sha256(out / name) for name in sorted([*sources, *memories])}
    slowest = max(layers, key=lambda layer: layer.expected_cycles)
    write_json(
        out / MANIFEST_FILE,
        {
            "top": TOP,
            "source": source,
            "hw_config": cfg.to_dict(),
            "sources": sources,
            "memories": sorted(memories),
            "files": files,
            "hash": _tree_hash(files),
            "input": layers[0].instream.to_dict(),
            "output": layers[-1].outstream.to_dict(),
            "expected_ii": slowest.expected_cycles,
            "expected_latency": latency,
            "slowest_layer": slowest.name,
            "fifo_depths": dict(zip([layer.name for layer in layers], depths, strict=True)),
            "layers": [
                {
                    "name": lyr.name,
                    "module": lyr.module,
                    "expected_cycles": lyr.expected_cycles,
                    "params": lyr.params,
                    "pipeline_stages": lyr.pipeline_stages,
                    "instream": lyr.instream.to_dict(),
                    "outstream": lyr.outstream.to_dict(),
                }
                for lyr in layers
            ],
        },
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_hash(files: dict[str, str]) -> str:
    """One hash over every file's name and content hash, in name order."""
    return hashlib.sha256("".join(f"{name} {digest}\n" for name, digest in sorted(files.items())).encode()).hexdigest()


def _replace_dir(tmp: Path, dest: Path) -> None:
    old = dest.with_name(f".{dest.name}-old")
    if old.exists():
        shutil.rmtree(old)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    if old.exists():
        shutil.rmtree(old)


def load_design(rtl_dir: Path) -> Design:
    """The design in an RTL directory, after checking every file against its manifest."""
    rtl_dir = Path(rtl_dir)
    path = rtl_dir / MANIFEST_FILE
    if not path.is_file():
        raise BnnflowError(f"{path} not found; write the RTL with `bnnflow rtl BUILD_DIR` (`bnnflow build` does)")
    try:
        manifest = json.loads(path.read_text())
        files, layers = manifest["files"], manifest["layers"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BnnflowError(f"{path} is not a bnnflow RTL manifest; write the RTL again with `bnnflow rtl`") from exc
    for name, digest in files.items():
        if not (rtl_dir / name).is_file():
            raise BnnflowError(f"{rtl_dir / name} is missing; write the RTL again with `bnnflow rtl`")
        if _sha256(rtl_dir / name) != digest:
            raise BnnflowError(
                f"{rtl_dir / name} differs from {MANIFEST_FILE} (edited after generation); "
                "write the RTL again with `bnnflow rtl`"
            )
    if _tree_hash(files) != manifest.get("hash"):
        raise BnnflowError(f"{path}: its hash does not match its files; write the RTL again with `bnnflow rtl`")
    records = [
        LayerRTL(
            lyr["name"],
            lyr["module"],
            lyr["params"],
            StreamFormat(**lyr["instream"]),
            StreamFormat(**lyr["outstream"]),
            lyr["expected_cycles"],
            pipeline_stages=lyr["pipeline_stages"],
        )
        for lyr in layers
    ]
    return Design(rtl_dir.resolve(), records, manifest)


def rtl_dir_of(build_dir: Path) -> Path:
    return Path(build_dir) / RTL_DIR


def write_rtl(build_dir: Path, cfg: HwConfig | None = None) -> Design:
    """The hardware stage: write the accelerator of a `bnnflow build` directory once, into BUILD_DIR/rtl.
    Simulation, synthesis and bitstreams all read that directory."""
    from bnnflow.artifacts import load_onnx

    build_dir = Path(build_dir)
    source = folded_model_path(build_dir)
    return generate(load_onnx(source), rtl_dir_of(build_dir), source=source.relative_to(build_dir).as_posix(), cfg=cfg)


def load_build_design(build_dir: Path) -> Design:
    """The RTL a build's hardware stage wrote; one line on how to write it when it is not there."""
    build_dir = Path(build_dir)
    if not (rtl_dir_of(build_dir) / MANIFEST_FILE).is_file():
        folded_model_path(build_dir)  # a directory that is no build at all says so first
        raise BnnflowError(
            f"{rtl_dir_of(build_dir)} holds no generated RTL; write it with `bnnflow rtl {build_dir}` "
            "(`bnnflow build` does it at the end)"
        )
    return load_design(rtl_dir_of(build_dir))
