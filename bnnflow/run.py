"""The main job, `bnnflow run`: train a small BNN on the embedded digits set, export, build, simulate the RTL, and
make an iCE40 UP5K bitstream of that RTL with open tools."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bnnflow.bitstream import BitstreamRun, make_bitstream
from bnnflow.dataflow.build import BuildResult, build
from bnnflow.dataflow.config import BuildConfig
from bnnflow.hw.generate import write_rtl
from bnnflow.sim.harness import SimConfig, SimReport, simulate
from bnnflow.training.config import TrainConfig
from bnnflow.training.data import load_dataset
from bnnflow.training.export import ExportResult, export
from bnnflow.training.train import TrainResult, train


@dataclass(frozen=True)
class RunSummary:
    train: TrainResult
    export: ExportResult
    build: BuildResult
    sim: SimReport
    out_dir: Path
    bitstream: BitstreamRun | None = None

    def lines(self) -> list[str]:
        m = self.train.metrics
        chk = self.export.check
        kind = "integer, exact" if chk.integer_outputs else "float, max |diff|"
        return [
            f"model      {self.train.spec.name}-w{self.train.spec.wbits}a{self.train.spec.abits} "
            f"on {m['dataset']} ({len(m['epochs'])} epochs)",
            f"accuracy   test {m['final_test_acc']:.2f}% (final epoch)",
            f"export     QONNX == PyTorch on {chk.samples} golden inputs ({kind} {chk.max_abs_diff:.3g})",
            f"checkpoint {self.train.checkpoint}",
            f"model      {self.export.model_path}",
            f"golden     {self.export.golden_path}",
            f"dataflow   {len(self.build.steps)} FINN steps, each equal to PyTorch (tie-aware) on "
            f"{self.build.checks[-1].samples if self.build.checks else 0} golden inputs "
            f"-> {self.build.output_dir}",
        ]

    def sim_lines(self) -> list[str]:
        verdict = "PyTorch and the RTL agree" if self.sim.rtl_ok else "PyTorch and the RTL DISAGREE"
        fpga = self.bitstream.lines() if self.bitstream else []
        return [f"verdict    {verdict}", *self.sim.lines(), *fpga]

    def estimate_table(self) -> str:
        from bnnflow.dataflow.estimate import format_table

        return format_table(self.build.estimates) if self.build.estimates else ""


# The main job's clock: the UP5K oscillator's 24 MHz setting, which the default design meets with a margin on
# every target (`bnnflow bitstream` aims at 48 MHz on iCE40 and 100 MHz on ECP5 and reports what it reaches).
RUN_MHZ = 24.0


def default_run_config(out_dir: Path, epochs: int = 40, seed: int = 0) -> TrainConfig:
    """TFC-w1a1 shape on 8x8 digits: trains in seconds on a laptop, needs no data files."""
    return TrainConfig(
        model="tfc",
        wbits=1,
        abits=1,
        dataset="digits",
        epochs=epochs,
        batch_size=50,
        lr=0.02,
        seed=seed,
        out_dir=Path(out_dir) / "train",
        golden_samples=64,
    )


def default_build_config(out_dir: Path) -> BuildConfig:
    """Fold the default model to 512 cycles per frame (about 195k FPS at 100 MHz) on a Pynq-Z1 part."""
    return BuildConfig(output_dir=Path(out_dir) / "dataflow", target_cycles_per_frame=512, verify_samples=16)


def run(
    cfg: TrainConfig,
    out_dir: Path,
    log: Callable[[str], None] | None = None,
    build_cfg: BuildConfig | None = None,
    target: str | None = "ice40-up5k",
    mhz: float | None = RUN_MHZ,
) -> RunSummary:
    data = load_dataset(cfg.dataset, cfg.data_dir)
    trained = train(cfg, log=log, data=data)
    exported = export(trained.model, data, Path(out_dir), cfg.golden_samples)
    built = build(exported.model_path, build_cfg or default_build_config(out_dir), log=log)
    write_rtl(built.output_dir)
    simulated = simulate(SimConfig(build_dir=built.output_dir))
    fpga = None
    if target is not None and simulated.rtl_ok:
        if log:
            log(f"bitstream for {target}: self-test in Verilator, Yosys, nextpnr")
        fpga = make_bitstream(built.output_dir, target, mhz=mhz)
    return RunSummary(trained, exported, built, simulated, Path(out_dir), fpga)
