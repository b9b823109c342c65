"""The self-checking top level for boards: test images, expected output words and labels in ROMs around the
accelerator (hw/rtl/bnn_selftest.sv), as one generated module, bnn_check, that Verilator runs and the board
top instantiates unchanged."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bnnflow.artifacts import build_golden_path, load_golden, load_onnx
from bnnflow.dataflow.host import HostGraphs
from bnnflow.dataflow.verify import execute_accelerator
from bnnflow.errors import BnnflowError
from bnnflow.fileio import write_text
from bnnflow.hw.generate import Design
from bnnflow.hw.layers import StreamFormat
from bnnflow.hw.streams import input_words, output_words
from bnnflow.render import render

CHECK = "bnn_check"
CHECK_LIBRARY = ("bnn_uart_tx.sv", "bnn_selftest.sv")
BAUD = 115200
IMAGES_FILE, EXPECTED_FILE, LABELS_FILE = "selftest_images.mem", "selftest_expected.mem", "selftest_labels.mem"


@dataclass(frozen=True)
class SelfTest:
    """A generated self-test: its parameters, and what the reference and PyTorch say it should count."""

    frames: int
    params: dict[str, int | str]
    expect_correct: int  # by the reference execution (FINN's) of the accelerator, the class rule of the RTL
    pytorch_correct: int  # by PyTorch's outputs (argmax), on the same images
    labels_from: str  # "labels" or "pytorch" (golden.npz without labels: PyTorch's own predictions)

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "expect_correct": self.expect_correct,
                "pytorch_correct": self.pytorch_correct, "labels_from": self.labels_from}  # fmt: skip


def _classes(values: np.ndarray, label_out: bool) -> np.ndarray:
    flat = values.reshape(len(values), -1)
    return flat[:, 0].astype(np.int64) if label_out else np.argmax(flat, axis=1)


def write_selftest(
    build_dir: Path, design: Design, out_dir: Path, frames: int, clk_hz: float, leds: int = 8
) -> SelfTest:
    """Write bnn_check.sv and its ROM files into out_dir for the first `frames` golden images."""
    golden = load_golden(build_golden_path(build_dir))
    available = len(golden["inputs"])
    if not 1 <= frames <= min(available, 9999):
        raise BnnflowError(f"self-test images: {frames} asked, golden.npz holds {available}; choose 1 to "
                           f"{min(available, 9999)}")  # fmt: skip
    model = load_onnx(Path(build_dir) / design.manifest["source"])
    inputs = golden["inputs"][:frames]
    torch_out = np.asarray(golden["outputs"][:frames])
    torch_pred = np.argmax(torch_out.reshape(frames, -1), axis=1)
    labels_from = "labels" if "labels" in golden else "pytorch"
    labels = np.asarray(golden["labels"][:frames] if "labels" in golden else torch_pred).astype(np.int64)
    fmt_in = StreamFormat(**design.manifest["input"])
    fmt_out = StreamFormat(**design.manifest["output"])
    label_out = fmt_out.elems * fmt_out.words == 1
    with warnings.catch_warnings():  # qonnx warns about datatype annotations it rounds to
        warnings.simplefilter("ignore")
        accel_inputs = HostGraphs.of_model(model).accelerator_inputs(inputs)
        reference = execute_accelerator(model, accel_inputs).reshape(frames, -1)
    if fmt_out.bipolar:
        raise BnnflowError("the self-test cannot rank bipolar outputs; end the network in a linear layer")
    classes = int(max(labels.max(initial=0) + 1, fmt_out.elems * fmt_out.words, 2))
    class_bits = max(1, (classes - 1).bit_length())
    if label_out:
        class_bits = max(class_bits, fmt_out.bits)
    write_text(out_dir / IMAGES_FILE, "\n".join(input_words(model, accel_inputs, fmt_in)) + "\n")
    write_text(out_dir / EXPECTED_FILE, "\n".join(output_words(model, reference, fmt_out)) + "\n")
    write_text(out_dir / LABELS_FILE, "\n".join(f"{int(v):x}" for v in labels) + "\n")
    params: dict[str, int | str] = {
        "IN_W": fmt_in.width,
        "IN_WORDS": fmt_in.words,
        "OUT_BITS": fmt_out.bits,
        "OUT_ELEMS": fmt_out.elems,
        "OUT_WORDS": fmt_out.words,
        "OUT_SIGNED": int(fmt_out.signed),
        "LABEL_OUT": int(label_out),
        "FRAMES": frames,
        "EXPECT_CORRECT": int(np.count_nonzero(_classes(reference, label_out) == labels)),
        "CLASS_BITS": class_bits,
        "IMAGES_FILE": IMAGES_FILE,
        "EXPECTED_FILE": EXPECTED_FILE,
        "LABELS_FILE": LABELS_FILE,
        "CLKS_PER_BIT": max(2, round(clk_hz / BAUD)),
        "REPEAT_CYCLES": max(1000, round(clk_hz)),
        "LEDS": leds,
    }
    write_text(out_dir / f"{CHECK}.sv", render("bnnflow.hw", "check.sv.j2", check=CHECK, params=params,
                                               rtl_hash=design.rtl_hash, leds=leds))  # fmt: skip
    return SelfTest(frames, params, int(params["EXPECT_CORRECT"]), int(np.count_nonzero(torch_pred == labels)),
                    labels_from)  # fmt: skip


def default_frames(design: Design, bram_bits: int, available: int) -> int:
    """As many test images (up to 16) as fit in an eighth of the part's block RAM."""
    fmt = StreamFormat(**design.manifest["input"])
    per_frame = max(1, fmt.width * fmt.words)
    return max(1, min(16, available, bram_bits // 8 // per_frame))
