"""Boards and clocks for open-tool bitstreams: board files (hw/boards/*.yaml: clock pin, LEDs, UART), the pin
constraints rendered from them, and the clock plan (direct, iCE40 UltraPlus oscillator, or a PLL)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bnnflow.errors import BnnflowError

HFOSC_MHZ = {48.0: "0b00", 24.0: "0b01", 12.0: "0b10", 6.0: "0b11"}


@dataclass(frozen=True)
class Led:
    pin: str
    active_low: bool


@dataclass(frozen=True)
class Board:
    """A board file: where the clock, the LEDs and the UART's transmit line are."""

    name: str
    targets: tuple[str, ...]
    io_standard: str
    clock_pin: str
    clock_mhz: float
    leds: tuple[Led, ...]
    uart_tx: str
    source: str  # the file it came from

    @classmethod
    def from_file(cls, path: Path) -> Board:
        try:
            raw = yaml.safe_load(Path(path).read_text())
            return cls(
                name=str(raw["name"]),
                targets=tuple(raw["targets"]),
                io_standard=str(raw["io_standard"]),
                clock_pin=str(raw["clock"]["pin"]),
                clock_mhz=float(raw["clock"]["mhz"]),
                leds=tuple(Led(str(led["pin"]), bool(led["active_low"])) for led in raw["leds"]),
                uart_tx=str(raw["uart_tx"]),
                source=Path(path).name,
            )
        except OSError as exc:
            raise BnnflowError(f"board file {path} cannot be read ({exc.strerror}); pass a board name or file") from exc
        except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise BnnflowError(
                f"board file {path} is not a board description ({type(exc).__name__}: {exc}); it needs name, "
                "targets, io_standard, clock {pin, mhz}, leds [{pin, active_low}] and uart_tx"
            ) from exc


def board_dir() -> Path:
    return Path(str(resources.files("bnnflow.hw"))) / "boards"


def known_boards() -> list[str]:
    return sorted(p.stem for p in board_dir().glob("*.yaml"))


def load_board(name_or_file: str) -> Board:
    """A shipped board by name (e.g. icebreaker, ulx3s) or a board file of the user's."""
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return Board.from_file(path)
    shipped = board_dir() / f"{name_or_file.lower()}.yaml"
    if not shipped.is_file():
        raise BnnflowError(f"unknown board '{name_or_file}'; choose one of {', '.join(known_boards())}, "
                           "'none', or pass a board file (.yaml)")  # fmt: skip
    return Board.from_file(shipped)


def constraints(board: Board, family: str) -> str:
    """The board's pins for the board top's ports: a PCF (iCE40) or LPF (ECP5) file."""
    ports = [("clk_in", board.clock_pin)] + [(f"led[{i}]", led.pin) for i, led in enumerate(board.leds)]
    ports.append(("uart_tx", board.uart_tx))
    lines = [f"# {board.name}, from {board.source}"]
    if family == "ice40":
        lines += [f"set_io -nowarn {port} {pin}" for port, pin in ports]
    else:
        for port, pin in ports:
            lines.append(f'LOCATE COMP "{port}" SITE "{pin}";')
            lines.append(f'IOBUF PORT "{port}" IO_TYPE={board.io_standard};')
    return "\n".join(lines) + "\n"


def ice40_pll(fin: float, fout: float) -> dict[str, Any] | None:
    """SB_PLL40 settings (simple feedback) whose output is closest to fout: F_PFD = fin/(DIVR+1) in
    [10, 133] MHz, F_VCO = F_PFD*(DIVF+1) in [533, 1066] MHz, output F_VCO / 2^DIVQ (iCE40 sysCLOCK PLL guide)."""
    best: dict[str, Any] | None = None
    for divr in range(16):
        pfd = fin / (divr + 1)
        if not 10 <= pfd <= 133:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533 <= vco <= 1066:
                continue
            for divq in range(1, 7):
                out = vco / 2**divq
                if best is None or abs(out - fout) < abs(best["fout"] - fout):
                    band = next(i for i, top in enumerate((17, 26, 44, 66, 101, 1e9), start=1) if pfd < top)
                    best = {"kind": "ice40_pll", "divr": divr, "divf": divf, "divq": divq,
                            "filter_range": band, "fout": out}  # fmt: skip
    return best


def ecp5_pll(fin: float, fout: float) -> dict[str, Any] | None:
    """EHXPLLL settings (feedback from CLKOP) closest to fout: F_PFD = fin/CLKI_DIV >= 3.125 MHz, output
    F_PFD*CLKFB_DIV, F_VCO = output*CLKOP_DIV in [400, 800] MHz (ECP5 sysCLOCK PLL guide)."""
    best: dict[str, Any] | None = None
    for clki in range(1, 129):
        pfd = fin / clki
        if pfd < 3.125:
            break
        for clkfb in range(1, 81):
            out = pfd * clkfb
            for clkop in range(1, 129):
                if 400 <= out * clkop <= 800:
                    if best is None or abs(out - fout) < abs(best["fout"] - fout):
                        best = {"kind": "ecp5_pll", "clki_div": clki, "clkfb_div": clkfb, "clkop_div": clkop,
                                "fin": fin, "fout": out}  # fmt: skip
                    break
    return best


def clock_plan(board: Board | None, part: str, family: str, mhz: float) -> dict[str, Any]:
    """How the board top gets a clock of `mhz`: directly from the pin, from the UP5K's oscillator, or a PLL."""
    if board is None:
        return {"kind": "direct", "fout": mhz, "note": "from the clk_in pin, placed by nextpnr"}
    if part == "up5k" and mhz in HFOSC_MHZ:
        return {"kind": "hfosc", "div": HFOSC_MHZ[mhz], "fout": mhz, "note": "internal oscillator SB_HFOSC"}
    if abs(board.clock_mhz - mhz) < 1e-9:
        return {"kind": "direct", "fout": mhz, "note": f"the board's {board.clock_mhz:g} MHz oscillator"}
    plan = (ice40_pll if family == "ice40" else ecp5_pll)(board.clock_mhz, mhz)
    if plan is None or abs(plan["fout"] - mhz) > 0.01 * mhz:
        got = f"; the nearest is {plan['fout']:.3f} MHz" if plan else ""
        raise BnnflowError(f"the PLL cannot make {mhz:g} MHz from {board.name}'s {board.clock_mhz:g} MHz{got}; "
                           "ask for another --mhz")  # fmt: skip
    plan["note"] = f"PLL from the board's {board.clock_mhz:g} MHz oscillator"
    return plan
