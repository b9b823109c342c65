"""BuildConfig: every setting of a dataflow build. Field names follow FINN's DataflowBuildConfig where the
meaning is the same (target_fps, synth_clk_period_ns, fpga_part, board, folding_config_file, ...)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bnnflow.configfile import read_mapping
from bnnflow.errors import BnnflowError

# Boards FINN knows, with their parts (finn.util.basic.part_map); enough to resolve --board without FINN.
BOARD_PARTS = {
    "Pynq-Z1": "xc7z020clg400-1",
    "Pynq-Z2": "xc7z020clg400-1",
    "Ultra96": "xczu3eg-sbva484-1-e",
    "Ultra96-V2": "xczu3eg-sbva484-1-i",
    "ZCU102": "xczu9eg-ffvb1156-2-e",
    "ZCU104": "xczu7ev-ffvc1156-2-e",
    "ZCU111": "xczu28dr-ffvg1517-2-e",
    "RFSoC2x2": "xczu28dr-ffvg1517-2-e",
    "RFSoC4x2": "xczu48dr-ffvg1517-2-e",
    "KV260_SOM": "xck26-sfvc784-2LV-c",
    "U250": "xcu250-figd2104-2L-e",
    "U280": "xcu280-fsvh2892-2L-e",
}


class BuildTarget(StrEnum):
    """How far a build goes."""

    ESTIMATES = "estimates"  # folded hardware graph + cycle/resource estimates; needs no vendor tool
    IP = "ip"  # + HLS/RTL IP generation and the stitched design (Vivado + Vitis HLS)
    BITSTREAM = "bitstream"  # + synthesis, place and route, bitfile (Vivado + Vitis HLS)


@dataclass
class BuildConfig:
    """A FINN dataflow build of one exported model."""

    output_dir: Path = Path("build/dataflow")
    """Build directory: intermediate/<step>.onnx, folding.json, estimates.json, verification.json."""
    board: str | None = None
    """Target board (e.g. Pynq-Z1); sets fpga_part when that is not given."""
    fpga_part: str = "xc7z020clg400-1"
    """Xilinx part for specialization and resource estimates."""
    synth_clk_period_ns: float = 10.0
    """Target clock period; turns target_fps into a cycle budget and cycles into FPS."""
    target_fps: float | None = None
    """Automatic folding (FINN's SetFolding) to reach this many frames per second."""
    target_cycles_per_frame: int | None = None
    """Automatic folding to this cycle budget per frame; overrides target_fps."""
    folding_config_file: Path | None = None
    """Explicit folding in FINN's folding-config JSON format; overrides automatic folding."""
    mvau_wwidth_max: int = 36
    """SetFolding: largest MVAU weight stream width (SIMD * weight bits) it may choose."""
    folding_two_pass_relaxation: bool = True
    """SetFolding: relax the target on a second pass if a layer cannot reach it."""
    minimize_bit_width: bool = True
    """Tighten weight and accumulator widths (FINN's MinimizeWeightBitWidth/MinimizeAccumulatorWidth)."""
    label_select: bool = True
    """Append top-1 label selection (TopK -> LabelSelect) so the accelerator outputs a class index."""
    verify: bool = True
    """Execute the graph on golden.npz after every step and compare with the PyTorch outputs."""
    verify_samples: int = 8
    """How many golden inputs the per-step verification executes."""
    golden: Path | None = None
    """golden.npz; default: beside the model. The build keeps its own copy (inputs as the graph consumes them)."""
    input_datatype: str | None = None
    """How the data arrives at the accelerator, e.g. UINT8 (a qonnx integer type). Default: as exported; a
    float input's quantizer then runs on the host and the accelerator receives its integer output."""
    input_scale: float = 1.0
    """With input_datatype: the network sees the arriving integers divided by this (255 for images trained
    on [0, 1]); folded into the graph like FINN's ToTensor pre-processing. Golden inputs are multiplied by it."""
    start_step: str | None = None
    """Resume from this step, reading the previous step's checkpoint in intermediate/."""
    stop_step: str | None = None
    """Stop after this step."""
    to: BuildTarget = BuildTarget.ESTIMATES
    """How far to build; the Vivado steps run only where Vivado and Vitis HLS are found."""
    finn_docker_image: str = "finn-plus"
    """FINN docker image to use for the Vivado steps when Vivado is not installed locally."""

    def __post_init__(self) -> None:
        self.to = _enum(BuildTarget, self.to, "to")
        for name in ("output_dir", "folding_config_file", "golden"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value))
        if self.board is not None:
            if self.board not in BOARD_PARTS:
                raise BnnflowError(f"unknown board '{self.board}'; known boards: {', '.join(sorted(BOARD_PARTS))}")
            self.fpga_part = BOARD_PARTS[self.board]
        if self.synth_clk_period_ns <= 0:
            raise BnnflowError("synth_clk_period_ns must be positive")
        if self.target_fps is not None and self.target_fps <= 0:
            raise BnnflowError("target_fps must be positive")
        if not self.input_scale > 0:
            raise BnnflowError(f"input_scale must be positive, got {self.input_scale}")
        if self.input_scale != 1.0 and self.input_datatype is None:
            raise BnnflowError("input_scale needs input_datatype (the integer type the data arrives as, e.g. UINT8)")

    @property
    def clk_hz(self) -> float:
        return 1e9 / self.synth_clk_period_ns

    def resolved_cycles_per_frame(self) -> int | None:
        """The cycle budget automatic folding aims at, or None for no automatic folding."""
        if self.target_cycles_per_frame is not None:
            return int(self.target_cycles_per_frame)
        if self.target_fps is not None:
            return max(1, int(self.clk_hz / self.target_fps))
        return None

    def replace(self, **overrides: Any) -> BuildConfig:
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise BnnflowError(f"unknown build option(s) {unknown}; allowed: {sorted(fields)}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path | StrEnum) else value
        return out

    @classmethod
    def from_yaml(cls, path: Path) -> BuildConfig:
        return cls().replace(**read_mapping(path, "build config"))


def _enum(kind: type[StrEnum], value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError as exc:
        choices = ", ".join(k.value for k in kind)
        raise BnnflowError(f"invalid {name} '{value}'; choose one of {choices}") from exc
