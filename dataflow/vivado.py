"""The vendor-tool part of a build: find Vivado/Vitis HLS (local or FINN's docker image) and run finn-plus'
IP generation, stitching and bitstream steps on the folded graph."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bnnflow.dataflow.config import BuildConfig, BuildTarget
from bnnflow.errors import BnnflowError

# finn-plus steps that continue a folded dataflow graph to IP and to a bitstream.
IP_STEPS = [
    "step_minimize_bit_width",
    "step_hw_codegen",
    "step_hw_ipgen",
    "step_set_fifo_depths",
    "step_create_stitched_ip",
]
BITSTREAM_STEPS = [*IP_STEPS, "step_synthesize_bitfile", "step_make_driver", "step_deployment_package"]


@dataclass(frozen=True)
class VendorTools:
    """Where the vendor tools are; all None means none were found."""

    vivado: str | None
    vitis_hls: str | None
    docker_image: str | None

    @property
    def local(self) -> bool:
        return self.vivado is not None and self.vitis_hls is not None

    @property
    def available(self) -> bool:
        return self.local or self.docker_image is not None


def _which(name: str, env: dict[str, str], root_var: str) -> str | None:
    found = shutil.which(name, path=env.get("PATH"))
    if found:
        return found
    root = env.get(root_var)
    candidate = Path(root) / "bin" / name if root else None
    return str(candidate) if candidate is not None and candidate.is_file() else None


def _docker_has_image(image: str, env: dict[str, str]) -> bool:
    docker = shutil.which("docker", path=env.get("PATH"))
    if docker is None:
        return False
    try:
        proc = subprocess.run([docker, "image", "inspect", image], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def find_vendor_tools(image: str, env: dict[str, str] | None = None) -> VendorTools:
    env = dict(os.environ if env is None else env)
    vivado = _which("vivado", env, "XILINX_VIVADO")
    hls = _which("vitis_hls", env, "XILINX_HLS") or _which("vitis_hls", env, "HLS_PATH")
    docker = image if not (vivado and hls) and _docker_has_image(image, env) else None
    return VendorTools(vivado, hls, docker)


def missing_tools_message(tools: VendorTools, cfg: BuildConfig) -> str:
    missing = [name for name, path in (("vivado", tools.vivado), ("vitis_hls", tools.vitis_hls)) if path is None]
    return (
        f"stopped after the estimates: --to {cfg.to.value} needs {' and '.join(missing)} "
        f"(not on PATH, XILINX_VIVADO/XILINX_HLS unset) or FINN's docker image '{cfg.finn_docker_image}'; "
        "install Vivado/Vitis HLS or pull the image"
    )


def flow_config(cfg: BuildConfig, out_dir: Path) -> dict[str, Any]:
    """finn-plus DataflowBuildConfig (as YAML data) that continues from the folded graph."""
    steps = BITSTREAM_STEPS if cfg.to is BuildTarget.BITSTREAM else IP_STEPS
    outputs = ["estimates", "stitched_ip"] + (
        ["bitfile", "pynq_driver", "deployment_package"] if cfg.to is BuildTarget.BITSTREAM else []
    )
    flow: dict[str, Any] = {
        "output_dir": str(out_dir),
        "synth_clk_period_ns": cfg.synth_clk_period_ns,
        "fpga_part": cfg.fpga_part,
        "steps": steps,
        "generate_outputs": outputs,
        "save_intermediate_models": True,
    }
    if cfg.board is not None:
        flow["board"] = cfg.board
        flow["shell_flow_type"] = "vivado_zynq"
    return flow


def vivado_command(tools: VendorTools, flow_file: Path, model_file: Path, out_dir: Path) -> list[str]:
    """The command that runs finn-plus' builder for the vendor steps, locally or in FINN's docker image."""
    build_path = out_dir / "finn_tmp"
    args = [
        "build",
        "--output",
        str(out_dir),
        "--build-path",
        str(build_path),
        "--accept-defaults",
        "--skip-dep-update",
        "--batch",
        str(flow_file),
        str(model_file),
    ]
    if tools.local:
        finn = shutil.which("finn") or "finn"
        return [finn, *args]
    if tools.docker_image is None:
        raise BnnflowError("no Vivado and no FINN docker image: cannot run the vendor steps")
    # The build directory holds both the folded model (intermediate/) and this step's output (vivado/).
    mount = str(out_dir.resolve().parent)
    return ["docker", "run", "--rm", "-v", f"{mount}:{mount}", "-w", mount, tools.docker_image, "finn", *args]


def run_vendor_steps(cfg: BuildConfig, folded_model: Path, tools: VendorTools) -> Path:
    """Write the finn-plus flow config beside the folded model and run the vendor steps."""
    out_dir = Path(cfg.output_dir).resolve() / "vivado"
    out_dir.mkdir(parents=True, exist_ok=True)
    flow_file = out_dir / "flow.yaml"
    flow_file.write_text(yaml.safe_dump(flow_config(cfg, out_dir), sort_keys=True))
    cmd = vivado_command(tools, flow_file, folded_model.resolve(), out_dir)
    proc = subprocess.run(cmd, check=False)
    if proc.returncode != 0:
        raise BnnflowError(f"finn-plus vendor steps failed (exit {proc.returncode}); see the log in {out_dir}")
    return out_dir
