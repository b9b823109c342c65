"""JUnit XML of a simulation, for the user's CI: one test case per check (each build step's verification against
PyTorch, the RTL's integrity against its manifest, the RTL against FINN's execution, the whole path against
PyTorch, the II against the estimate, cppsim, each layer's cycles), so that CI systems list them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnnflow.fileio import write_bytes


@dataclass(frozen=True)
class Case:
    """One check: passed, failed (the design is wrong), error (the check could not run) or skipped."""

    classname: str
    name: str
    outcome: str = "passed"
    message: str = ""
    seconds: float = 0.0


def build_cases(build_dir: Path) -> list[Case]:
    """The build's per-step verification against PyTorch, as recorded in verification.json."""
    path = Path(build_dir) / "verification.json"
    if not path.is_file():
        return [Case("bnnflow.build", "verification", "skipped", "the build ran without verification")]
    cases = []
    for step in json.loads(path.read_text())["steps"]:
        detail = (f"{step['mismatches']} of {step['elements']} elements differ, top-1 divergent "
                  f"{step['top1_divergent']} on {step['samples']} inputs")  # fmt: skip
        cases.append(Case("bnnflow.build", f"step {step['step']} equals PyTorch", "passed" if step["ok"] else
                          "failed", "" if step["ok"] else detail))  # fmt: skip
    return cases


def sim_cases(report: Any) -> list[Case]:
    """The checks of a SimReport."""
    rtl = "bnnflow.rtl"
    elements = int(report.outputs.size)
    cases = [
        Case(rtl, "rtl matches its manifest"),
        Case(
            rtl,
            "rtl equals FINN's execution, every element",
            "passed" if report.mismatches_vs_finn == 0 else "failed",
            f"{report.mismatches_vs_finn} of {elements} output elements differ",
            report.wall_s,
        ),
    ]
    vs = report.vs_pytorch
    if vs is None:
        cases.append(Case(rtl, "host part + rtl equals PyTorch", "skipped", "no golden outputs"))
    else:
        cases.append(Case(rtl, "host part + rtl equals PyTorch", "passed" if vs.ok else "failed", vs.summary()))
    name = "measured II equals FINN's estimate"
    if report.backpressure or report.measured_ii is None:
        why = "back-pressure changes the II" if report.backpressure else "fewer than 3 frames"
        cases.append(Case(rtl, name, "skipped", why))
    else:
        ok = report.measured_ii == report.expected_ii
        cases.append(Case(rtl, name, "passed" if ok else "failed",
                          f"measured {report.measured_ii:g}, estimated {report.expected_ii}"))  # fmt: skip
    cpp = report.cppsim
    if cpp.error:
        cases.append(Case("bnnflow.cppsim", "cppsim equals FINN's execution", "error", cpp.error))
    elif not cpp.ran:
        cases.append(Case("bnnflow.cppsim", "cppsim equals FINN's execution", "skipped", cpp.reason))
    else:
        cases.append(Case("bnnflow.cppsim", "cppsim equals FINN's execution", "passed" if cpp.ok else "failed",
                          cpp.line()))  # fmt: skip
    for layer in report.layer_cycles:
        ok = layer["measured_cycles"] == layer["expected_cycles"]
        cases.append(Case("bnnflow.layers", f"{layer['name']} cycles per frame equal FINN's estimate",
                          "passed" if ok else "failed",
                          f"measured {layer['measured_cycles']}, estimated {layer['expected_cycles']}"))  # fmt: skip
    return cases


def error_cases(message: str) -> list[Case]:
    """What stopped the simulation before it could compare anything (an edited RTL file, no Verilator, ...)."""
    return [Case("bnnflow.rtl", "rtl matches its manifest and simulates", "error", message)]


def write_junit(dest: Path, suite: str, cases: list[Case]) -> Path:
    """One <testsuite> in <testsuites>, written atomically."""
    counts = {kind: sum(1 for c in cases if c.outcome == kind) for kind in ("failed", "error", "skipped")}
    total = f"{sum(c.seconds for c in cases):.3f}"
    root = ET.Element("testsuites", name="bnnflow", tests=str(len(cases)), failures=str(counts["failed"]),
                      errors=str(counts["error"]), skipped=str(counts["skipped"]), time=total)  # fmt: skip
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=str(counts["failed"]),
                       errors=str(counts["error"]), skipped=str(counts["skipped"]), time=total)  # fmt: skip
    for case in cases:
        tc = ET.SubElement(ts, "testcase", classname=case.classname, name=case.name, time=f"{case.seconds:.3f}")
        if case.outcome == "failed":
            ET.SubElement(tc, "failure", message=case.message, type="divergence").text = case.message
        elif case.outcome == "error":
            ET.SubElement(tc, "error", message=case.message, type="error").text = case.message
        elif case.outcome == "skipped":
            ET.SubElement(tc, "skipped", message=case.message)
    ET.indent(root)
    write_bytes(Path(dest), ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
    return Path(dest)
