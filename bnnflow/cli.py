"""The `bnnflow` command: thin click wrappers over the library functions of each stage."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import click

from bnnflow import __version__
from bnnflow.errors import BnnflowError


def user_cache_dir() -> Path:
    """Where bnnflow keeps what it can rebuild (compiled Verilator models): $BNNFLOW_CACHE_DIR, else
    $XDG_CACHE_HOME/bnnflow, else ~/.cache/bnnflow."""
    import os

    if os.environ.get("BNNFLOW_CACHE_DIR"):
        return Path(os.environ["BNNFLOW_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bnnflow"


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bnnflow")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Train binarized networks, export QONNX and verify the accelerator, without vendor tools."""
    ctx.obj = {"debug": debug}


def _train_options(fn: Any) -> Any:
    options = [
        click.option("--config", "config_file", type=click.Path(path_type=Path), help="TrainConfig YAML file."),
        click.option("--model", help="Zoo model: tfc, sfc, lfc, cnv."),
        click.option("--model-config", type=click.Path(path_type=Path), help="YAML of a user-defined MLP/CNN."),
        click.option("--wbits", type=int, help="Weight bits (zoo: 1 or 2)."),
        click.option("--abits", type=int, help="Activation bits (zoo: 1 or 2)."),
        click.option("--dataset", help="digits (embedded), mnist or cifar10."),
        click.option("--data-dir", type=click.Path(path_type=Path), help="Directory holding the data set files."),
        click.option("--epochs", type=int),
        click.option("--batch-size", type=int),
        click.option("--lr", type=float),
        click.option(
            "--recipe",
            type=click.Choice(["auto", "plain", "distill"]),
            help="Training recipe for the settings not given: distill (float teacher, one-cycle, no "
            "dropout) or plain; auto (default): distill for zoo models, plain for --model-config.",
        ),
        click.option("--schedule", type=click.Choice(["onecycle", "cosine", "step", "constant"])),
        click.option(
            "--teacher-width", type=float, help="Distill from a float teacher this many times wider; 0: no teacher."
        ),
        click.option("--teacher-epochs", type=int, help="Training epochs of the float teacher."),
        click.option(
            "--distill-alpha", type=float, help="Weight of the teacher's soft targets in the loss (default 0.7)."
        ),
        click.option("--distill-temperature", type=float, help="Softmax temperature of distillation (default 4)."),
        click.option("--weight-decay", type=float, help="L2 penalty in Adam (default 0)."),
        click.option(
            "--dropout", type=float, help="Dropout after the input and hidden FC layers (default: the recipe's)."
        ),
        click.option("--loss", type=click.Choice(["cross_entropy", "sqr_hinge"])),
        click.option(
            "--augment/--no-augment", default=None, help="Random shifts, and flips for colour images (CIFAR-10)."
        ),
        click.option(
            "--augment-shift",
            type=int,
            help="Largest random shift in pixels (default: 1 per 28 of a grey image's width, 1 per 8 of a colour one).",
        ),
        click.option("--seed", type=int),
        click.option("--threads", type=int, help="Torch CPU threads (0: all cores)."),
        click.option("--device", help="Torch device, e.g. cpu or cuda."),
        click.option("--golden-samples", type=int, help="Test images stored in golden.npz."),
        click.option("--progress/--no-progress", default=None, help="Show a progress bar."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _build_train_config(config_file: Path | None, **flags: Any) -> Any:
    from bnnflow.training.config import TrainConfig

    base = TrainConfig.from_yaml(config_file) if config_file else TrainConfig()
    if flags.get("model") is not None and flags.get("dataset") is None and not config_file:
        from bnnflow.training.models import default_dataset

        flags["dataset"] = default_dataset(flags["model"].lower())
    return base.replace(**flags)


@cli.command()
@_train_options
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Output directory.")
@click.option("--resume", is_flag=True, default=None, help="Continue from OUT/checkpoint.pt.")
def train(config_file: Path | None, **flags: Any) -> None:
    """Quantization-aware training of a zoo or user model."""
    from bnnflow.training.train import train as run_training

    cfg = _build_train_config(config_file, **flags)
    result = run_training(cfg, log=_echo_err)
    click.echo(f"test accuracy {result.test_accuracy:.2f}%; checkpoint {result.checkpoint}")


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option(
    "--target",
    default="ice40-up5k",
    show_default=True,
    type=click.Choice(["ice40-up5k", "ice40-hx8k", "ecp5-25k", "ecp5-85k"]),
    help="FPGA part.",
)
@click.option("--board", help="icebreaker, ulx3s, ice40-hx8k-breakout, a board file (.yaml), or none "
              "(pins placed by nextpnr); default: the target's board.")  # fmt: skip
@click.option("--mhz", type=float, help="Clock to close timing at (default: 48 on iCE40, 100 on ECP5).")
@click.option("--images", type=int, help="Test images in the self-test ROM (default: what fits).")
@click.option("--seed", type=int, default=1, show_default=True, help="nextpnr's placement seed.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Run the self-test in Verilator before synthesis.")  # fmt: skip
def bitstream(build_dir: Path, target: str, board: str | None, mhz: float | None, images: int | None, seed: int,
              check: bool) -> None:  # fmt: skip
    """A bitstream for an iCE40 or ECP5 part with open tools (Yosys, nextpnr): the RTL of BUILD_DIR/rtl inside a
    self-test that checks test images on the board (LEDs, UART), with utilisation, Fmax and frames/s."""
    from bnnflow.bitstream import make_bitstream

    result = make_bitstream(build_dir, target, check=check, board_name=board, mhz=mhz, frames=images, seed=seed)
    for line in result.lines():
        click.echo(line)
    click.echo(f"report     {build_dir / 'fpga' / target / 'report.json'}")
    failure = result.timing_failure()
    if failure:
        raise BnnflowError(failure)


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--board", default="Pynq-Z1", show_default=True, help="Pynq-Z1 or ZCU104.")
@click.option("--part", help="Xilinx part (default: the board's).")
@click.option("--clock-ns", type=float, default=10.0, show_default=True, help="Clock period to constrain.")
@click.option("--run/--no-run", "run_vivado", default=False, show_default=True,
              help="Run Vivado on the project (it must be installed).")  # fmt: skip
def vivado(build_dir: Path, board: str, part: str | None, clock_ns: float, run_vivado: bool) -> None:
    """A Vivado project (TCL, file list, XDC, AXI-stream wrapper) for the same RTL that Verilator verified."""
    from bnnflow.hw.generate import load_build_design
    from bnnflow.hw.xilinx import find_board, find_vivado, run_vivado_project, write_vivado_project

    design = load_build_design(build_dir)
    chosen = find_board(board)
    project = write_vivado_project(design.rtl_dir, design.manifest, Path(build_dir) / "xilinx",
                                   part or chosen.part, clock_ns, chosen.name)  # fmt: skip
    click.echo(f"vivado     project for {project.part} ({project.board}) in {project.out_dir}; "
               f"rtl hash {design.rtl_hash}")  # fmt: skip
    click.echo(f"run        vivado -mode batch -source {project.script}")
    if run_vivado:
        product = run_vivado_project(project, find_vivado())
        click.echo(f"wrote      {product}")


@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Output directory (default: beside it).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Directory holding the data set files.")
@click.option("--golden-samples", type=int, help="Test images stored in golden.npz.")
def export(checkpoint: Path, out_dir: Path | None, data_dir: Path | None, golden_samples: int | None) -> None:
    """Export a checkpoint to QONNX plus golden.npz, and check the export against PyTorch."""
    from bnnflow.training.export import export_checkpoint

    if not checkpoint.exists():
        raise BnnflowError(
            f"{checkpoint} does not exist; pass a training output directory (`bnnflow train --out DIR`) "
            "or the checkpoint.pt in it"
        )
    if checkpoint.is_dir():
        checkpoint = checkpoint / "checkpoint.pt"
    result = export_checkpoint(checkpoint, out_dir, data_dir, golden_samples)
    chk = result.check
    click.echo(
        f"wrote {result.model_path} and {result.golden_path}; QONNX equals PyTorch on {chk.samples} inputs "
        f"(max |diff| {chk.max_abs_diff:.3g})"
    )


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("build/run"), show_default=True)
@click.option("--epochs", type=int, default=40, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--progress/--no-progress", default=False, show_default=True)
@click.option("--target", default="ice40-up5k", show_default=True,
              type=click.Choice(["ice40-up5k", "ice40-hx8k", "ecp5-25k", "ecp5-85k", "none"]),
              help="The part to make a bitstream for with open tools; none stops after simulation.")  # fmt: skip
@click.option("--mhz", type=float, default=24.0, show_default=True, help="The bitstream's clock.")
def run(out_dir: Path, epochs: int, seed: int, progress: bool, target: str, mhz: float) -> None:
    """The main job on the embedded digits set: train, export, FINN build, RTL in Verilator, an open-tool
    bitstream of the same RTL, summarize."""
    from bnnflow.run import default_run_config
    from bnnflow.run import run as run_job

    cfg = default_run_config(out_dir, epochs, seed).replace(progress=progress)
    summary = run_job(cfg, out_dir, log=_echo_err, target=None if target == "none" else target, mhz=mhz)
    for line in summary.lines():
        click.echo(line)
    click.echo(summary.estimate_table(), nl=False)
    for line in summary.sim_lines():
        click.echo(line)
    failure = summary.sim.failure()
    if failure:
        raise BnnflowError(failure)


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="BuildConfig YAML file.")
@click.option("--out", "output_dir", type=click.Path(path_type=Path), help="Build directory.")
@click.option("--board", help="Target board, e.g. Pynq-Z1 (sets the part).")
@click.option("--fpga-part", help="Xilinx part, e.g. xc7z020clg400-1.")
@click.option("--synth-clk-period-ns", type=float, help="Target clock period in ns.")
@click.option("--target-fps", type=float, help="Automatic folding to this throughput.")
@click.option("--target-cycles-per-frame", type=int, help="Automatic folding to this cycle budget.")
@click.option("--folding-config-file", type=click.Path(path_type=Path), help="FINN folding-config JSON.")
@click.option("--mvau-wwidth-max", type=int, help="Widest MVAU weight stream automatic folding may use.")
@click.option("--golden", type=click.Path(path_type=Path), help="golden.npz (default: beside the model).")
@click.option(
    "--input-datatype",
    help="How the data arrive, e.g. UINT8 (default: as exported; a float input's quantizer runs on the host).",
)
@click.option("--input-scale", type=float, help="With --input-datatype: the network sees the data divided by this.")
@click.option("--verify/--no-verify", default=None, help="Check every step against golden.npz.")
@click.option("--verify-samples", type=int, help="Golden inputs executed per step.")
@click.option("--start-step", help="Resume at this step (see `bnnflow steps`).")
@click.option("--stop-step", help="Stop after this step.")
@click.option(
    "--to",
    type=click.Choice(["estimates", "ip", "bitstream"]),
    help="How far to build; ip/bitstream continue with FINN's own HLS IP in Vivado (not the verified RTL).",
)
@click.option("--fifo-depth", type=int, default=2, show_default=True, help="Smallest FIFO depth between layers.")
def build(model: Path, config_file: Path | None, fifo_depth: int, **flags: Any) -> None:
    """Compile an exported QONNX model with FINN to a folded dataflow graph with estimates, and write its RTL
    once into BUILD_DIR/rtl (simulation, synthesis and bitstreams read it)."""
    from bnnflow.dataflow.build import build as run_build
    from bnnflow.dataflow.config import BuildConfig
    from bnnflow.hw.generate import HwConfig

    hw_cfg = HwConfig(fifo_depth=fifo_depth)
    hw_cfg.validate()
    cfg = (BuildConfig.from_yaml(config_file) if config_file else BuildConfig()).replace(**flags)
    result = run_build(model, cfg, log=_echo_err)
    if result.estimates is not None:
        from bnnflow.dataflow.estimate import format_table

        click.echo(format_table(result.estimates), nl=False)
    if "create_dataflow_partition" in result.steps:
        from bnnflow.dataflow.build import host_line

        click.echo(host_line(result.host_nodes))
    click.echo(f"build directory {result.output_dir} (last step: {result.steps[-1]})")
    if result.steps[-1] in ("fold", "estimate"):
        _echo_rtl(write_rtl_of(result.output_dir, hw_cfg), result.output_dir)
    if result.stopped:
        click.echo(result.stopped)


def write_rtl_of(build_dir: Path, cfg: Any) -> Any:
    from bnnflow.hw.generate import write_rtl

    return write_rtl(build_dir, cfg)


def _echo_rtl(design: Any, build_dir: Path) -> None:
    click.echo(f"rtl        {build_dir / 'rtl'}: {len(design.sources)} sources, {len(design.memories)} memories, "
               f"hash {design.rtl_hash}")  # fmt: skip


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--fifo-depth", type=int, default=2, show_default=True, help="Smallest FIFO depth between layers.")
def rtl(build_dir: Path, fifo_depth: int) -> None:
    """Write the accelerator's RTL once into BUILD_DIR/rtl, with manifest.json and its hash."""
    from bnnflow.hw.generate import HwConfig

    _echo_rtl(write_rtl_of(build_dir, HwConfig(fifo_depth=fifo_depth)), build_dir)


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--inputs",
    "inputs_file",
    type=click.Path(path_type=Path),
    required=True,
    help=".npy batch of inputs, as the network takes them (floats for a network trained on floats).",
)
@click.option("--outputs", "outputs_file", type=click.Path(path_type=Path), help=".npy of PyTorch's outputs on them.")
@click.option("--out", "dest", type=click.Path(path_type=Path), help="Where to write (default: golden.npz beside it).")
def golden(model: Path, inputs_file: Path, outputs_file: Path | None, dest: Path | None) -> None:
    """golden.npz for a QONNX model exported elsewhere: its outputs on INPUTS (checked against --outputs)."""
    from bnnflow.training.export import golden_from_onnx

    inputs = _load_npy(inputs_file, "inputs")
    outputs = _load_npy(outputs_file, "outputs") if outputs_file is not None else None
    path, check = golden_from_onnx(model, inputs, outputs, dest)
    agreed = f"; equal to --outputs (max |diff| {check.max_abs_diff:.3g})" if outputs is not None else ""
    click.echo(f"wrote {path}: {check.samples} inputs with qonnx' execution of {model}{agreed}")


def _load_npy(path: Path, what: str) -> Any:
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise BnnflowError(f"{what} file {path} not found") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise BnnflowError(f"{what} file {path} is not a readable .npy array ({type(exc).__name__})") from exc


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--golden", type=click.Path(path_type=Path), help="golden.npz (default: the build's).")
@click.option("--samples", type=int, help="Simulate only the first N golden inputs.")
@click.option("--backpressure", is_flag=True, help="Random input gaps and output stalls.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the back-pressure pattern.")
@click.option("--trace", is_flag=True, help="Write an FST waveform to BUILD_DIR/sim/trace.fst.")
@click.option(
    "--cppsim/--no-cppsim",
    default=True,
    show_default=True,
    help="Also run FINN's C++ simulation of the HLS layers (needs finn-hlslib in $FINN_DEPS).",
)
@click.option("--cppsim-samples", type=int, default=4, show_default=True, help="Frames to run in cppsim.")
@click.option("--layer-timing", is_flag=True, help="Also time each layer alone, next to FINN's per-layer estimate.")
@click.option("--junit", "junit_file", type=click.Path(path_type=Path),
              help="Write JUnit XML: one test case per check, for CI systems.")  # fmt: skip
@click.option("--cache/--no-cache", default=True, show_default=True,
              help="Reuse compiled Verilator models by the hash of their RTL ($BNNFLOW_CACHE_DIR, else "
              "$XDG_CACHE_HOME/bnnflow, else ~/.cache/bnnflow).")  # fmt: skip
def sim(
    build_dir: Path,
    golden: Path | None,
    samples: int | None,
    backpressure: bool,
    seed: int,
    trace: bool,
    cppsim: bool,
    cppsim_samples: int,
    layer_timing: bool,
    junit_file: Path | None,
    cache: bool,
) -> None:
    """Simulate the accelerator's RTL (BUILD_DIR/rtl) in Verilator against the golden outputs; the exit status is
    non-zero on any divergence (the RTL from FINN or PyTorch, the II from the estimate, a layer's cycles)."""
    from bnnflow.sim import junit
    from bnnflow.sim.harness import SimConfig, simulate

    cfg = SimConfig(build_dir, golden, samples, backpressure, seed, trace, cppsim=cppsim, cppsim_samples=cppsim_samples,
                    layer_timing=layer_timing, cache_dir=user_cache_dir() / "verilator" if cache else None)  # fmt: skip
    suite = f"bnnflow sim {build_dir}"
    try:
        report = simulate(cfg)
    except BnnflowError as exc:
        if junit_file is not None:
            junit.write_junit(junit_file, suite, junit.build_cases(build_dir) + junit.error_cases(str(exc)))
        raise
    for line in report.lines():
        click.echo(line)
    cases = junit.build_cases(build_dir) + junit.sim_cases(report)
    if junit_file is not None:
        click.echo(f"junit      {junit.write_junit(junit_file, suite, cases)}")
    failure = report.failure() or next((f"{c.name}: {c.message}" for c in cases if c.outcome in ("failed", "error")),
                                       None)  # fmt: skip
    if failure:
        raise BnnflowError(failure)


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--family", default="xc7", show_default=True, help="Xilinx family for Yosys' synth_xilinx.")
def synth(build_dir: Path, family: str) -> None:
    """Synthesize the accelerator's RTL with Yosys (open tools): LUTs, flip-flops, block RAM vs FINN's estimate."""
    from bnnflow.hw.synth import report_lines, synthesize_build

    for line in report_lines(synthesize_build(build_dir, family)):
        click.echo(line)
    click.echo(f"report     {build_dir / 'synth' / 'report.json'}")


@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="YAML with the pruning settings (a training config's `prune:` section, or the settings alone).",
)
@click.option("--method", type=click.Choice(["tile", "node", "unstructured"]), help="What to remove.")
@click.option("--speedup", type=float, help="tile: divide the unpruned cycles per frame by this.")
@click.option("--criterion", type=click.Choice(["rms", "taylor"]), help="tile: how tiles are ranked.")
@click.option("--target-cycles", type=int, help="tile: cycles per frame to reach.")
@click.option("--sparsity", type=float, help="node/unstructured: fraction removed per layer, in [0, 1).")
@click.option("--layers", help="Comma-separated layers that may be pruned (conv0.., fc0..); default all.")
@click.option("--steps", type=int, help="Pruning steps.")
@click.option("--epochs-per-step", type=int, help="Retraining epochs after each step.")
@click.option("--finetune-epochs", type=int, help="Retraining epochs after the last step.")
@click.option("--lr", type=float, help="Retraining learning rate.")
@click.option("--target-cycles-per-frame", type=int, help="Fold the unpruned network to this budget (the target).")
@click.option("--folding-config-file", type=click.Path(path_type=Path), help="Or: the target folding, FINN JSON.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Directory holding the data set files.")
@click.option("--threads", type=int, default=0, help="Torch CPU threads (0: all cores).")
@click.option(
    "--build/--no-build",
    "build_pruned",
    default=True,
    show_default=True,
    help="Build the pruned network with the same folding.",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("build/prune"), show_default=True)
def prune(checkpoint: Path, config_file: Path | None, layers: str | None, target_cycles_per_frame: int | None,
          folding_config_file: Path | None, data_dir: Path | None, threads: int, build_pruned: bool,
          out_dir: Path, **flags: Any) -> None:  # fmt: skip
    """Hardware-aware pruning of a trained checkpoint (fold tiles, neurons, or unstructured), with retraining."""
    from bnnflow.dataflow.config import BuildConfig
    from bnnflow.prune import prune as run_prune
    from bnnflow.prune import prune_config

    if checkpoint.is_dir():
        checkpoint = checkpoint / "checkpoint.pt"
    if layers:
        flags["layers"] = tuple(name.strip() for name in layers.split(",") if name.strip())
    cfg = prune_config(config_file, **flags)
    if target_cycles_per_frame is None and folding_config_file is None:
        raise BnnflowError("pruning needs the target folding: --target-cycles-per-frame N or --folding-config-file F")
    build_cfg = BuildConfig(target_cycles_per_frame=target_cycles_per_frame, folding_config_file=folding_config_file,
                            verify_samples=8)  # fmt: skip
    result = run_prune(checkpoint, cfg, out_dir, build_cfg, data_dir, threads, build_pruned, log=_echo_err)
    for line in result.lines():
        click.echo(line)


@cli.command()
@click.argument("sweep_file", type=click.Path(path_type=Path))
@click.option("--out", "sweep_dir", type=click.Path(path_type=Path),
              help="Sweep directory (default: build/sweeps/<name>); rerun with the same one to resume.")  # fmt: skip
@click.option("--scheduler", help="Address of an existing Dask scheduler, e.g. tcp://host:8786 "
              "(default: an embedded local cluster).")  # fmt: skip
@click.option("--workers", type=int, help="Workers of the embedded cluster (default: one per core, as memory allows).")
@click.option("--serial", is_flag=True, help="No Dask: every point one after another in this process.")
@click.option("--retry-failed", is_flag=True, help="Run the points that failed last time again.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for --scheduler.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def sweep(sweep_file: Path, sweep_dir: Path | None, scheduler: str | None, workers: int | None, serial: bool,
          retry_failed: bool, timeout: float, progress: bool) -> None:  # fmt: skip
    """Train, build, simulate and synthesize every point of SWEEP_FILE on Dask, resumably; one table of results."""
    from bnnflow.sweep import run_sweep

    if workers is not None and workers < 1:
        raise BnnflowError(f"--workers {workers}: give at least 1")
    try:
        with _sweep_progress(progress) as show:
            outcome = run_sweep(sweep_file, sweep_dir, scheduler, workers, serial, retry_failed, timeout, show)
    except KeyboardInterrupt:
        _echo_err("sweep interrupted: the finished points are kept; run the same command again to continue")
        raise
    for line in outcome.lines():
        click.echo(line)
    if outcome.failed:
        raise BnnflowError(f"{len(outcome.failed)} of {outcome.total} points failed; their errors are in "
                           f"{outcome.sweep_dir / 'results.csv'} (--retry-failed runs them again)")  # fmt: skip


def _sweep_progress(enabled: bool) -> Any:
    """A progress bar of points done, with running and failed beside it (on stderr)."""
    import contextlib

    from tqdm import tqdm

    @contextlib.contextmanager
    def bar() -> Any:
        if not enabled:
            yield None
            return
        shown: dict[str, Any] = {}

        def show(done: int, running: int, failed: int, total: int) -> None:
            if shown.get("last") == (done, running, failed):
                return
            shown["last"] = (done, running, failed)
            if "bar" not in shown:
                shown["bar"] = tqdm(total=total, unit="point", desc="sweep", file=sys.stderr, dynamic_ncols=True)
            b = shown["bar"]
            b.n = done
            b.set_postfix_str(f"running {running}, failed {failed}", refresh=True)

        try:
            yield show
        finally:
            if "bar" in shown:
                shown["bar"].close()

    return bar()


@cli.command()
@click.argument("sweep_dir", type=click.Path(path_type=Path))
@click.option("--point", help="The point whose per-layer cycles are plotted (id or label; default: the most "
              "accurate point on the accuracy-cycles Pareto front).")  # fmt: skip
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Report directory (default: SWEEP_DIR/report).")
def report(sweep_dir: Path, point: str | None, out_dir: Path | None) -> None:
    """A self-contained HTML page and PNGs of a sweep: Pareto fronts, per-layer cycles, training curves."""
    from bnnflow.report import write_report

    page = write_report(sweep_dir, out_dir, point)
    click.echo(f"report     {page}")


@cli.command()
def steps() -> None:
    """List the dataflow build steps in order."""
    from bnnflow.dataflow.steps import STEPS

    for name, fn in STEPS.items():
        click.echo(f"{name:26s} {(fn.__doc__ or '').strip().splitlines()[0]}")


@cli.command()
def models() -> None:
    """List the zoo models and their bit widths."""
    from bnnflow.training.models import ZOO, ZOO_BITS

    bits = ", ".join(f"w{w}a{a}" for w, a in ZOO_BITS)
    for name, topo in ZOO.items():
        layers = [f"conv{c.channels}{'+pool' if c.pool else ''}" for c in topo.conv] + [f"fc{w}" for w in topo.fc]
        click.echo(f"{name:4s} {topo.dataset:8s} in{topo.in_bits}b  {'-'.join(layers)}  ({bits})")


def main(argv: list[str] | None = None) -> int:
    """Entry point: turns BnnflowError (and any other failure) into one line on stderr and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    # Optional accelerators that brevitas looks for on import; irrelevant to bnnflow.
    warnings.filterwarnings("ignore", message="fast_hadamard_transform")
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="bnnflow", standalone_mode=False)
    except click.exceptions.Abort:
        _echo_err("bnnflow: aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except BnnflowError as exc:
        if debug:
            raise
        _echo_err(f"bnnflow: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _echo_err("bnnflow: interrupted")
        return 130
    except Exception as exc:
        if debug:
            raise
        _echo_err(f"bnnflow: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        return 1
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
