"""`bnnflow sim --junit`: one JUnit test case per check, readable by CI systems, for a design that passes and for
ones with a corrupted weight memory, which must fail (non-zero exit, a failing or erroring case)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bnnflow.cli import main
from bnnflow.dataflow.build import build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.hw.generate import _sha256, _tree_hash, write_rtl
from tests.byon import Act, Dense, Net, export_net

pytestmark = [pytest.mark.verilator, pytest.mark.usefixtures("verilator")]

NET = Net((12,), Act("identity", 1), dense=(Dense(16, act=Act("identity", 1)),), classes=4, wbits=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("junit")
    src = export_net(NET, root / "src", samples=6, seed=2)
    build(src / "model.onnx", BuildConfig(output_dir=root / "b", target_cycles_per_frame=8, verify_samples=2))
    write_rtl(root / "b")
    return root / "b"


def check_schema(path: Path) -> tuple[ET.Element, list[ET.Element]]:
    """The elements and attributes the JUnit schema requires, and counts that agree with the cases."""
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    for attr in ("name", "tests", "failures", "errors", "skipped", "time"):
        assert attr in suite.attrib, attr
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases) > 0
    assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
    assert int(suite.get("errors")) == sum(1 for c in cases if c.find("error") is not None)
    assert int(suite.get("skipped")) == sum(1 for c in cases if c.find("skipped") is not None)
    for case in cases:
        assert case.get("name") and case.get("classname") and float(case.get("time")) >= 0
        for child in case:
            assert child.tag in ("failure", "error", "skipped") and child.get("message") is not None
    return suite, cases


def outcome(case: ET.Element) -> str:
    return next((child.tag for child in case), "passed")


def test_passing_design(built, tmp_path, capsys) -> None:
    xml = tmp_path / "sim.xml"
    assert main(["sim", str(built), "--no-cppsim", "--layer-timing", "--junit", str(xml)]) == 0
    suite, cases = check_schema(xml)
    by = {c.get("name"): outcome(c) for c in cases}
    assert by["rtl equals FINN's execution, every element"] == "passed"
    assert by["host part + rtl equals PyTorch"] == "passed"
    assert by["measured II equals FINN's estimate"] == "passed"
    assert by["cppsim equals FINN's execution"] == "skipped"
    steps = json.loads((built / "verification.json").read_text())["steps"]
    assert [n for n in by if n.startswith("step ")] == [f"step {s['step']} equals PyTorch" for s in steps]
    assert sum(1 for c in cases if c.get("classname") == "bnnflow.layers") == len(
        json.loads((built / "rtl" / "manifest.json").read_text())["layers"])  # fmt: skip
    assert suite.get("failures") == suite.get("errors") == "0"


def _corrupt_weights(build_dir: Path, keep_manifest_consistent: bool) -> None:
    rtl = build_dir / "rtl"
    mem = sorted(rtl.glob("*weights*.mem"))[0]
    words = mem.read_text().split()
    # Every weight bit inverted: a memory that is the right size and the wrong content.
    flipped = [format(int(w, 16) ^ ((1 << (4 * len(w))) - 1), f"0{len(w)}x") for w in words]
    mem.write_text("\n".join(flipped) + "\n")
    if keep_manifest_consistent:  # as if the generator itself had written the wrong weights
        manifest = json.loads((rtl / "manifest.json").read_text())
        manifest["files"][mem.name] = _sha256(mem)
        manifest["hash"] = _tree_hash(manifest["files"])
        (rtl / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("consistent", [False, True], ids=["edited-after-generation", "generated-wrong"])
def test_corrupted_weight_memory_fails(built, tmp_path, capsys, consistent) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(built, copy)
    _corrupt_weights(copy, consistent)
    xml = tmp_path / "sim.xml"
    code = main(["sim", str(copy), "--no-cppsim", "--junit", str(xml)])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    suite, cases = check_schema(xml)
    by = {c.get("name"): outcome(c) for c in cases}
    if consistent:
        assert by["rtl equals FINN's execution, every element"] == "failure"
        assert int(suite.get("failures")) >= 1
    else:
        assert by["rtl matches its manifest and simulates"] == "error"
        assert "does not match" in err or "edited" in err


def test_a_design_simulated_before_is_not_compiled_again(built, tmp_path, capsys, monkeypatch) -> None:
    """Compiled models are cached by the hash of the RTL: the same design in another build directory reuses it."""
    import os
    import shutil

    monkeypatch.setenv("BNNFLOW_CACHE_DIR", str(tmp_path / "cache"))
    first, second = tmp_path / "one", tmp_path / "two"
    for copy in (first, second):
        shutil.copytree(built, copy, ignore=shutil.ignore_patterns("sim"))
    assert main(["sim", str(first), "--no-cppsim"]) == 0
    assert (first / "sim" / "obj_dir" / "verilator.log").is_file()  # compiled
    assert main(["sim", str(second), "--no-cppsim"]) == 0
    assert not (second / "sim" / "obj_dir" / "verilator.log").exists()  # taken from the cache
    assert (second / "sim" / "obj_dir" / "Vtb").is_file()
    cache = Path(os.environ["BNNFLOW_CACHE_DIR"]) / "verilator"
    assert len(list(cache.glob("*/Vtb"))) >= 1
    out = capsys.readouterr().out
    assert out.count("0 of 6 output elements differ") == 2
