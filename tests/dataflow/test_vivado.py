"""Vendor-tool detection and the commands built for finn-plus' Vivado steps, tested without Vivado."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from bnnflow.dataflow.config import BuildConfig
from bnnflow.dataflow.vivado import (
    BITSTREAM_STEPS,
    IP_STEPS,
    VendorTools,
    find_vendor_tools,
    flow_config,
    missing_tools_message,
    vivado_command,
)

pytestmark = pytest.mark.unit  # the unit tier: `make test-fast`


def _fake_tool(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_no_tools_found(tmp_path: Path) -> None:
    tools = find_vendor_tools("finn-plus", env={"PATH": str(tmp_path)})
    assert tools == VendorTools(None, None, None)
    assert not tools.available
    msg = missing_tools_message(tools, BuildConfig(to="bitstream"))
    assert "needs vivado and vitis_hls" in msg and "docker image 'finn-plus'" in msg


def test_tools_on_path(tmp_path: Path) -> None:
    vivado = _fake_tool(tmp_path / "bin", "vivado")
    hls = _fake_tool(tmp_path / "bin", "vitis_hls")
    tools = find_vendor_tools("finn-plus", env={"PATH": str(tmp_path / "bin")})
    assert (tools.vivado, tools.vitis_hls, tools.docker_image) == (str(vivado), str(hls), None)
    assert tools.local and tools.available


def test_tools_from_xilinx_variables(tmp_path: Path) -> None:
    _fake_tool(tmp_path / "Vivado" / "bin", "vivado")
    _fake_tool(tmp_path / "Vitis_HLS" / "bin", "vitis_hls")
    env = {"PATH": "", "XILINX_VIVADO": str(tmp_path / "Vivado"), "XILINX_HLS": str(tmp_path / "Vitis_HLS")}
    tools = find_vendor_tools("finn-plus", env=env)
    assert tools.local
    only_vivado = find_vendor_tools("finn-plus", env={"PATH": "", "XILINX_VIVADO": str(tmp_path / "Vivado")})
    assert not only_vivado.local
    assert "needs vitis_hls" in missing_tools_message(only_vivado, BuildConfig(to="ip"))


def test_docker_image_detected_through_docker_cli(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _fake_tool(bin_dir, "docker")  # `docker image inspect` exits 0: the image exists
    tools = find_vendor_tools("my-finn", env={"PATH": str(bin_dir)})
    assert tools.docker_image == "my-finn" and not tools.local and tools.available
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 1\n")
    assert find_vendor_tools("my-finn", env={"PATH": str(bin_dir)}).docker_image is None


def test_flow_config_for_bitstream_on_a_board(tmp_path: Path) -> None:
    cfg = BuildConfig(board="Pynq-Z1", to="bitstream", synth_clk_period_ns=5.0)
    flow = flow_config(cfg, tmp_path)
    assert flow["steps"] == BITSTREAM_STEPS and flow["steps"][: len(IP_STEPS)] == IP_STEPS
    assert flow["board"] == "Pynq-Z1" and flow["shell_flow_type"] == "vivado_zynq"
    assert flow["fpga_part"] == "xc7z020clg400-1" and flow["synth_clk_period_ns"] == 5.0
    assert "bitfile" in flow["generate_outputs"]
    ip = flow_config(BuildConfig(to="ip"), tmp_path)
    assert ip["steps"] == IP_STEPS and "bitfile" not in ip["generate_outputs"] and "board" not in ip
    assert yaml.safe_load(yaml.safe_dump(flow)) == flow


def test_commands_local_and_docker(tmp_path: Path) -> None:
    flow, model, out = tmp_path / "flow.yaml", tmp_path / "fold.onnx", tmp_path / "vivado"
    local = vivado_command(VendorTools("/opt/vivado", "/opt/vitis_hls", None), flow, model, out)
    assert local[0].endswith("finn") and local[1] == "build"
    assert local[-2:] == [str(flow), str(model)]
    assert ["--output", str(out)] == local[2:4] and "--build-path" in local
    docker = vivado_command(VendorTools(None, None, "finn-plus:latest"), flow, model, out)
    assert docker[:3] == ["docker", "run", "--rm"]
    mount = str(tmp_path.resolve())  # the build directory: folded model and vivado output both inside
    assert docker[docker.index("-v") + 1] == f"{mount}:{mount}"
    assert docker[docker.index("finn-plus:latest") + 1 :][:2] == ["finn", "build"]
