"""FINN's C++ simulation of the HLS layers: tool detection and skip reasons, FINN's code generation for every HLS
layer bnnflow builds, the open-header toolchain (g++, the hls4ml ap_types, bnnflow's shims, FINN's cnpy), a
broken finn-hlslib, and, where finn-hlslib is present, every HLS layer's output against FINN's python execution."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bnnflow.artifacts import load_golden, load_onnx
from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.dataflow.host import HostGraphs
from bnnflow.errors import BnnflowError
from bnnflow.hw.generate import folded_model_path, write_rtl
from bnnflow.sim import cppsim
from bnnflow.sim.harness import SimConfig, simulate
from tests.sim.conftest import tiny_cnn


def _folded(src: Path, out: Path, cycles: int) -> tuple[object, np.ndarray]:
    build(src / "model.onnx", BuildConfig(output_dir=out, target_cycles_per_frame=cycles, verify_samples=1))
    write_rtl(out)
    model = load_onnx(folded_model_path(out))
    return model, HostGraphs.of_model(model).accelerator_inputs(load_golden(out / "golden.npz")["inputs"])


def _hlslib_dir(root: Path, bnn_library: str = "// test\n") -> Path:
    lib = root / "finn-hlslib"
    lib.mkdir(parents=True)
    (lib / "bnn-library.h").write_text(bnn_library)
    (lib / "mvau.hpp").write_text("// test\n")
    return lib


def test_skip_reasons_name_what_is_missing(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FINN_DEPS", str(tmp_path))
    reason = cppsim.find_cpp_tools()
    assert isinstance(reason, str)
    assert reason.startswith(f"skipped: finn-hlslib not found ({tmp_path / 'finn-hlslib'}")
    assert "$FINN_DEPS/finn-hlslib" in reason
    report = cppsim.run_cppsim(object(), np.zeros((1, 4)), tmp_path / "work")
    assert not report.ran and report.ok and report.line() == reason

    lib = _hlslib_dir(tmp_path)
    tools = cppsim.find_cpp_tools()
    if cppsim.find_ap_types() is not None:
        assert isinstance(tools, cppsim.CppTools) and tools.hlslib == lib
    monkeypatch.setattr(cppsim, "find_ap_types", lambda: None)
    assert cppsim.find_cpp_tools() == (
        "skipped: the ap_types headers were not found; install them with `pip install --no-deps hls4ml==1.3.0`"
    )


def test_sim_report_carries_the_cppsim_outcome(verilator, exported, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FINN_DEPS", str(tmp_path / "deps"))
    out = tmp_path / "b"
    _folded(exported("tfc", 1, 1, 4), out, 1000)
    report = simulate(SimConfig(build_dir=out, samples=2))
    saved = json.loads((out / "sim" / "report.json").read_text())["cppsim"]
    if cppsim.find_hlslib() is None:
        assert saved["ran"] is False and saved["summary"].startswith("skipped: finn-hlslib not found")
    assert report.lines()[-1] == f"cppsim     {saved['summary']}"
    off = simulate(SimConfig(build_dir=out, samples=2, cppsim=False))
    assert off.cppsim.line() == "skipped: turned off (--no-cppsim)"


@pytest.mark.parametrize(("wbits", "abits"), [(1, 1), (2, 2)])
def test_finn_generates_cppsim_code_for_every_hls_layer(exported, real_images, tmp_path, wbits, abits) -> None:
    """Every HLS layer of an MLP and a CNN gets FINN's cppsim program, calling its finn-hlslib function."""
    functions = {
        "MVAU_hls": "Matrix_Vector_Activate_Stream_Batch<",
        "LabelSelect_hls": "LabelSelect_Batch<",
        "Thresholding_hls": "Thresholding",
    }
    (tmp_path / "cnn").mkdir()
    cnn_src = tiny_cnn(tmp_path / "cnn", real_images, wbits, abits)
    seen = set()
    for name, src, cycles in (("tfc", exported("tfc", wbits, abits, 4), 1000), ("cnn", cnn_src, 300)):
        model, _ = _folded(src, tmp_path / name, cycles)
        spec, dirs = cppsim.generate_code(model, tmp_path / name / "cpp")
        nodes = cppsim.hls_nodes(spec)
        assert nodes and sorted(dirs) == sorted(n.name for n in nodes)
        for node in nodes:
            code = (dirs[node.name] / f"execute_{node.op_type}.cpp").read_text()
            assert '#include "bnn-library.h"' in code and "int main()" in code
            assert functions.get(node.op_type, node.op_type.removesuffix("_hls")) in code, node.op_type
            seen.add(node.op_type)
    assert {"MVAU_hls", "LabelSelect_hls"} <= seen


TOOLCHAIN_PROGRAM = r"""
#include <ap_int.h>
#include <hls_stream.h>
#include <hls_vector.h>
#include <ap_axi_sdata.h>
#include "cnpy.h"

// Pack signed 5-bit values 3 per 15-bit word through an hls::stream, unpack them, and double them.
int main() {
    cnpy::NpyArray in = cnpy::npy_load("in.npy");
    std::vector<float> vals = in.as_vec<float>();
    hls::stream<ap_uint<15>> words("words");
    for (size_t i = 0; i < vals.size(); i += 3) {
        ap_uint<15> w = 0;
        for (int k = 0; k < 3; k++) w((k + 1) * 5 - 1, k * 5) = ap_int<5>((int)vals[i + k]);
        words.write(w);
    }
    std::vector<float> out;
    hls::vector<ap_int<6>, 3> lane;
    qdma_axis<15, 0, 0, 0> beat;
    while (!words.empty()) {
        beat.set_data(words.read());
        ap_uint<15> w = beat.get_data();
        for (int k = 0; k < 3; k++) {
            ap_int<5> v = w((k + 1) * 5 - 1, k * 5);
            lane[k] = v;
        }
        lane = lane + lane * hls::vector<ap_int<6>, 3>(ap_int<6>(1));
        for (int k = 0; k < 3; k++) out.push_back((float)lane[k].to_int());
    }
    cnpy::npy_save("out.npy", out);
    return half(0.5f) == half(0.5f) ? 0 : 1;
}
"""


def test_open_headers_compile_and_run_hls_style_code(tmp_path) -> None:
    """The toolchain cppsim uses (g++, the hls4ml ap_types, bnnflow's shim headers, FINN's cnpy, -lz) builds
    and runs code written against the Vitis HLS names, with exact arbitrary-precision arithmetic."""
    ap_types = cppsim.find_ap_types()
    if ap_types is None:
        pytest.skip("hls4ml's ap_types headers are not installed (`make setup` installs them)")
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++ on PATH (Debian: apt-get install g++)")
    tools = cppsim.CppTools(hlslib=tmp_path, ap_types=ap_types, compiler=compiler)
    src = tmp_path / "prog.cpp"
    src.write_text(TOOLCHAIN_PROGRAM)
    exe = tmp_path / "prog"
    subprocess.run(tools.compile_command([src], exe), check=True, capture_output=True)
    values = np.random.default_rng(1).integers(-16, 16, size=300).astype(np.float32)
    np.save(tmp_path / "in.npy", values)
    subprocess.run([str(exe)], cwd=tmp_path, check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), 2 * values)


def test_incompatible_hlslib_is_one_line_error(exported, monkeypatch, tmp_path) -> None:
    if cppsim.find_ap_types() is None or shutil.which("g++") is None:
        pytest.skip("needs hls4ml's ap_types headers (`make setup`) and g++")
    monkeypatch.setenv("FINN_DEPS", str(tmp_path / "deps"))
    lib = _hlslib_dir(tmp_path / "deps", '#error "this finn-hlslib is too old"\n')
    (lib / "flatten.hpp").write_text('#error "this finn-hlslib is too old"\n')
    model, inputs = _folded(exported("tfc", 1, 1, 4), tmp_path / "b", 1000)
    with pytest.raises(
        BnnflowError, match=r"cppsim: g\+\+ could not compile FINN's code for MVAU_hls_0: .*too old"
    ) as e:
        cppsim.run_cppsim(model, inputs[:1], tmp_path / "work", jobs=2)
    assert "\n" not in str(e.value) and "--no-cppsim" in str(e.value)


def test_sim_command_keeps_the_rtl_result_when_cppsim_fails(verilator, exported, monkeypatch, capsys, tmp_path):
    """`bnnflow sim` prints the RTL comparison, then the cppsim failure as one line on stderr, exit 2."""
    from bnnflow.cli import main

    if cppsim.find_ap_types() is None or shutil.which("g++") is None:
        pytest.skip("needs hls4ml's ap_types headers (`make setup`) and g++")
    monkeypatch.setenv("FINN_DEPS", str(tmp_path / "deps"))
    lib = _hlslib_dir(tmp_path / "deps", '#error "this finn-hlslib is too old"\n')
    (lib / "flatten.hpp").write_text('#error "this finn-hlslib is too old"\n')
    _folded(exported("tfc", 1, 1, 4), tmp_path / "b", 1000)
    code = main(["sim", str(tmp_path / "b"), "--samples", "3", "--cppsim-samples", "1"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "rtl        3 frames in Verilator: 0 of 3 output elements differ" in out
    assert "cppsim     FAILED: cppsim: g++ could not compile FINN's code for MVAU_hls_0" in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("bnnflow: error: cppsim: g++ could not compile"), err
    saved = json.loads((tmp_path / "b" / "sim" / "report.json").read_text())
    assert saved["mismatches_vs_finn"] == 0 and "too old" in saved["cppsim"]["error"]
    monkeypatch.delenv("FINN_DEPS")
    assert main(["sim", str(tmp_path / "b"), "--samples", "3", "--no-cppsim"]) == 0


needs_hlslib = pytest.mark.skipif(
    cppsim.find_hlslib() is None,
    reason="finn-hlslib not found in $FINN_DEPS or FINN's finn_deps (no package registry ships it)",
)


@needs_hlslib
@pytest.mark.parametrize(("wbits", "abits"), [(1, 1), (1, 2), (2, 2)])
def test_cppsim_equals_python_execution(exported, real_images, tmp_path, wbits, abits) -> None:
    (tmp_path / "cnn").mkdir()
    cnn_src = tiny_cnn(tmp_path / "cnn", real_images, wbits, abits)
    for name, src, cycles in (("tfc", exported("tfc", wbits, abits, 4), 1000), ("cnn", cnn_src, 300)):
        model, inputs = _folded(src, tmp_path / name, cycles)
        report = cppsim.run_cppsim(model, inputs[:2], tmp_path / name / "cpp")
        assert report.ran and report.frames == 2, report.line()
        assert {layer.name for layer in report.layers} == {n.name for n in cppsim.hls_nodes(model)}
        assert all(layer.elements > 0 for layer in report.layers)
        assert report.mismatches == 0, report.to_dict()
