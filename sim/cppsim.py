"""FINN's C++ simulation (cppsim) of the HLS layers of a folded graph, without Vitis.

FINN generates, for every HLS layer, a C++ program that streams a .npy input through the finn-hlslib function
and writes a .npy output. FINN compiles it against Vitis HLS' headers and libraries; bnnflow compiles the same
generated code with g++ against the open ap_types headers that the hls4ml wheel ships (`ap_int.h`,
`hls_stream.h`), plus small headers of its own (include/: `hls_vector.h`, `hls_half.h`, `ap_axi_sdata.h`) for the
Vitis names the generated code and finn-hlslib use that the open headers lack. Each layer then runs on the tensor that
FINN's python execution feeds it, and its output is compared element by element with python's.

finn-hlslib itself is not in any package registry (FINN clones it from GitHub into its dependency directory,
$FINN_DEPS or <FINN_ROOT>/finn_deps). Where it is missing, cppsim is skipped and the report says why.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bnnflow.errors import BnnflowError

SHIM_INCLUDE = Path(__file__).resolve().parent / "include"
AP_TYPES_IN_HLS4ML = Path("templates") / "vivado" / "ap_types"
HLSLIB_MARKERS = ("bnn-library.h", "mvau.hpp")


def hlslib_candidates() -> list[Path]:
    """Where finn-plus looks for its dependencies: $FINN_DEPS, else <FINN_ROOT>/finn_deps."""
    out = []
    if os.environ.get("FINN_DEPS"):
        out.append(Path(os.environ["FINN_DEPS"]) / "finn-hlslib")
    try:
        from finn.interface.settings import FINN_ROOT

        out.append(Path(FINN_ROOT) / "finn_deps" / "finn-hlslib")
    except ImportError:
        pass
    return out


def find_hlslib() -> Path | None:
    for path in hlslib_candidates():
        if all((path / marker).is_file() for marker in HLSLIB_MARKERS):
            return path
    return None


def find_ap_types() -> Path | None:
    """The open ap_types headers inside the installed hls4ml wheel (found without importing hls4ml, whose
    own dependencies bnnflow does not install)."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / AP_TYPES_IN_HLS4ML
    return path if (path / "ap_int.h").is_file() and (path / "hls_stream.h").is_file() else None


def find_finn_sources() -> tuple[Path, Path]:
    """FINN's npy<->stream helpers (templates/npy2stream) and its custom HLS headers, from the finn-plus wheel."""
    spec = importlib.util.find_spec("finn")
    if spec is None or not spec.submodule_search_locations:
        raise BnnflowError("finn-plus is not installed; run `make setup`")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "templates" / "npy2stream", root / "custom_hls"


@dataclass(frozen=True)
class CppTools:
    """What compiling FINN's generated cppsim code takes."""

    hlslib: Path
    ap_types: Path
    compiler: str

    def include_dirs(self) -> list[Path]:
        npy2stream, custom_hls = find_finn_sources()
        # The shim comes last: a real hls_vector.h elsewhere on the path wins.
        return [npy2stream, self.hlslib, custom_hls, self.ap_types, SHIM_INCLUDE]

    def compile_command(self, sources: list[Path], exe: Path) -> list[str]:
        npy2stream, _ = find_finn_sources()
        return [
            self.compiler,
            "-std=c++17",
            "-O1",
            "-w",
            "-include",
            "hls_half.h",
            *(f"-I{d}" for d in self.include_dirs()),
            *map(str, sources),
            str(npy2stream / "cnpy.cpp"),
            "-o",
            str(exe),
            "-lz",
        ]


def find_cpp_tools() -> CppTools | str:
    """The tools for cppsim, or one line saying which is missing and how to get it."""
    hlslib = find_hlslib()
    if hlslib is None:
        where = ", ".join(str(p) for p in hlslib_candidates()) or "no FINN dependency directory"
        return (
            f"skipped: finn-hlslib not found ({where}); no registry package ships it: clone "
            "https://github.com/Xilinx/finn-hlslib into $FINN_DEPS/finn-hlslib to enable cppsim"
        )
    ap_types = find_ap_types()
    if ap_types is None:
        return "skipped: the ap_types headers were not found; install them with `pip install --no-deps hls4ml==1.3.0`"
    compiler = os.environ.get("CXX") or shutil.which("g++")
    if compiler is None:
        return "skipped: no C++ compiler (g++) found; install g++ (Debian: apt-get install g++)"
    return CppTools(hlslib, ap_types, compiler)


@dataclass(frozen=True)
class LayerResult:
    name: str
    op_type: str
    elements: int
    mismatches: int
    compile_s: float


@dataclass
class CppsimReport:
    """FINN's C++ simulation of each HLS layer against FINN's python execution of the same layer."""

    ran: bool
    reason: str = ""  # why it did not run
    frames: int = 0
    layers: list[LayerResult] = field(default_factory=list)
    error: str = ""  # why it failed (a layer's program did not compile or run)

    @property
    def mismatches(self) -> int:
        return sum(layer.mismatches for layer in self.layers)

    @property
    def ok(self) -> bool:
        return not self.error and (not self.ran or self.mismatches == 0)

    def line(self) -> str:
        if self.error:
            return f"FAILED: {self.error}"
        if not self.ran:
            return self.reason
        if not self.layers:
            return "no HLS layers in this graph (nothing for cppsim)"
        elements = sum(layer.elements for layer in self.layers)
        return (
            f"{len(self.layers)} HLS layers x {self.frames} frames compiled with g++: {self.mismatches} of "
            f"{elements} output elements differ from FINN's python execution"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "error": self.error or None,
            "summary": self.line(),
            "frames": self.frames,
            "mismatches": self.mismatches,
            "layers": [asdict(layer) for layer in self.layers],
        }


def hls_nodes(model: Any) -> list[Any]:
    return [node for node in model.graph.node if node.domain.endswith(".hls")]


def _compile(tools: CppTools, code_dir: Path) -> tuple[Path, float]:
    exe = code_dir / "node_model"
    sources = sorted(code_dir.glob("*.cpp"))
    cmd = tools.compile_command(sources, exe)
    (code_dir / "compile.sh").write_text(" ".join(cmd) + "\n")
    began = time.perf_counter()
    proc = subprocess.run(cmd, cwd=code_dir, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        (code_dir / "compile.log").write_text(proc.stdout + proc.stderr)
        first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:200])
        raise BnnflowError(
            f"cppsim: g++ could not compile FINN's code for {code_dir.name}: {first.strip()} "
            f"(full log: {code_dir / 'compile.log'}); check that finn-hlslib at {tools.hlslib} is the commit "
            "finn-plus pins (finn/interface/external_dependencies.yaml), or pass --no-cppsim"
        )
    return exe, time.perf_counter() - began


def generate_code(model: Any, work_dir: Path) -> tuple[Any, dict[str, Path]]:
    """A copy of the folded graph whose HLS layers are set to cppsim, with FINN's cppsim program generated for
    each (work_dir/<layer>/execute_<op>.cpp and its parameter headers). Needs no finn-hlslib."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    spec = ModelWrapper(model.model.__deepcopy__())
    dirs = {}
    for node in hls_nodes(spec):
        inst = getCustomOp(node)
        code_dir = Path(work_dir).resolve() / node.name
        if code_dir.exists():
            shutil.rmtree(code_dir)
        code_dir.mkdir(parents=True)
        inst.set_nodeattr("code_gen_dir_cppsim", str(code_dir))
        inst.set_nodeattr("exec_mode", "cppsim")
        inst.code_generation_cppsim(spec)
        dirs[node.name] = code_dir
    return spec, dirs


def compile_all(spec: Any, dirs: dict[str, Path], tools: CppTools, jobs: int | None = None) -> dict[str, float]:
    """Compile every layer's program (in parallel) and point its node at the executable; seconds per layer."""
    from qonnx.custom_op.registry import getCustomOp

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        built = dict(zip(dirs, pool.map(lambda d: _compile(tools, d), dirs.values()), strict=True))
    times = {}
    for node in hls_nodes(spec):
        exe, seconds = built[node.name]
        getCustomOp(node).set_nodeattr("executable_path", str(exe))
        times[node.name] = round(seconds, 2)
    return times


def run_cppsim(
    model: Any, inputs: np.ndarray, work_dir: Path, tools: CppTools | str | None = None, jobs: int | None = None
) -> CppsimReport:
    """Run every HLS layer of the folded (partition) graph `model` in cppsim on the tensors that FINN's python
    execution of the whole graph gives it for each input, and compare every output element."""
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.custom_op.registry import getCustomOp

    from bnnflow.dataflow.verify import generic_layers

    tools = find_cpp_tools() if tools is None else tools
    if isinstance(tools, str):
        return CppsimReport(ran=False, reason=tools)
    if not hls_nodes(model):
        return CppsimReport(ran=True)
    spec, dirs = generate_code(model, Path(work_dir))
    times = compile_all(spec, dirs, tools, jobs)
    reference = generic_layers(model)
    iname = reference.graph.input[0].name
    shape = reference.get_tensor_shape(iname)
    counts = {node.name: [0, 0] for node in hls_nodes(spec)}
    for x in inputs:
        ctx = execute_onnx(reference, {iname: np.asarray(x, dtype=np.float32).reshape(shape)}, True)
        for node in hls_nodes(spec):
            node_ctx = {name: np.asarray(ctx[name], dtype=np.float32) for name in node.input if name}
            getCustomOp(node).execute_node(node_ctx, spec.graph)
            want = np.asarray(ctx[node.output[0]])
            got = np.asarray(node_ctx[node.output[0]]).reshape(want.shape)
            counts[node.name][0] += want.size
            counts[node.name][1] += int(np.count_nonzero(got != want))
    layers = [
        LayerResult(node.name, node.op_type, counts[node.name][0], counts[node.name][1], times[node.name])
        for node in hls_nodes(spec)
    ]
    return CppsimReport(ran=True, frames=len(inputs), layers=layers)
