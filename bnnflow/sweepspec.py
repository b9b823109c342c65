"""The sweep file: axes (lists of values whose product is the set of points) and fixed settings per stage, expanded
into points and the stages each point needs. A stage is named by a hash of everything that decides its output, so
points that share a training (or a build) share the stage."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnnflow import __version__
from bnnflow.errors import BnnflowError

# Axes in the order points are enumerated; a scalar is an axis of one value.
AXES = (
    "model",
    "bits",
    "wbits",
    "abits",
    "dataset",
    "epochs",
    "seed",
    "prune",
    "target_cycles_per_frame",
    "target_fps",
    "clock_mhz",
    "part",
)
# Fixed settings, one mapping per stage, and the list of stages to run.
SECTIONS = ("name", "train", "build", "sim", "stages", "security")
STAGES = ("train", "build", "sim", "synth")  # prune runs where a point's prune axis asks for it
TRAIN_FIXED_EXCLUDED = {"out_dir", "resume", "progress", "model_config", *AXES}
# Torch threads of a training unless the train section sets them: the same wherever the stage runs, since the
# result depends on them.
TRAIN_THREADS = 1
BUILD_FIXED_EXCLUDED = {"output_dir", "golden", "folding_config_file", "start_step", "stop_step", "fpga_part", *AXES}
SIM_FIXED = {"samples", "backpressure", "seed"}
SECURITY_FILES = ("tls_ca_file", "tls_client_cert", "tls_client_key")
SECURITY_KEYS = {*SECURITY_FILES, "require_encryption"}
DEFAULT_PART = "xc7z020clg400-1"
_BITS = re.compile(r"^w(\d+)a(\d+)$")


def digest(*parts: Any) -> str:
    """A short, stable hash of JSON-able values."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Stage:
    """One task of the sweep: `name` (train, prune, build, sim, synth) run with `config` on the results of `deps`."""

    name: str
    key: str
    config: dict[str, Any]
    deps: tuple[str, ...] = ()

    @property
    def task(self) -> str:
        return f"{self.name}-{self.key}"


@dataclass(frozen=True)
class Point:
    """One combination of axis values and the stages that produce its row."""

    id: str
    index: int
    values: dict[str, Any]
    stages: dict[str, str]  # stage name -> task name (unpruned_build too, for pruned points)

    @property
    def label(self) -> str:
        v = self.values
        prune = prune_label(v["prune"])
        fold = (
            f"c{v['target_cycles_per_frame']}"
            if v["target_cycles_per_frame"]
            else (f"{v['target_fps']:g}fps" if v["target_fps"] else "auto")
        )
        return f"{v['model']}-w{v['wbits']}a{v['abits']} {fold} {prune} {v['part']}"


@dataclass
class SweepSpec:
    """A parsed sweep file."""

    path: Path
    name: str
    axes: dict[str, list[Any]]
    train: dict[str, Any]
    build: dict[str, Any]
    sim: dict[str, Any]
    stages: tuple[str, ...]
    security: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def hash(self) -> str:
        """What a sweep directory belongs to: every setting that decides the points and their results."""
        return digest(self.axes, self.train, self.build, self.sim, list(self.stages))

    def normalized(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "axes": self.axes,
            "train": self.train,
            "build": self.build,
            "sim": self.sim,
            "stages": list(self.stages),
        }

    def points(self) -> tuple[list[Point], dict[str, Stage]]:
        """Every point in axis order, and every distinct stage they need (by task name)."""
        stages: dict[str, Stage] = {}

        def add(stage: Stage) -> str:
            stages.setdefault(stage.task, stage)
            return stage.task

        points = []
        names = list(self.axes)
        for index, combo in enumerate(itertools.product(*(self.axes[n] for n in names))):
            values = _point_values(dict(zip(names, combo, strict=True)))
            points.append(self._point(index, values, add))
        return points, stages

    def _point(self, index: int, values: dict[str, Any], add: Any) -> Point:
        from bnnflow.training.models import default_dataset

        model = values["model"]
        train_cfg = {"threads": TRAIN_THREADS, **self.train}
        if str(model).endswith((".yaml", ".yml")):
            train_cfg["model_config"] = str(_resolve(self.path, model))
        else:
            train_cfg["model"] = model
        dataset = values["dataset"] or train_cfg.get("dataset") or default_dataset(str(model))
        values["dataset"] = dataset
        train_cfg.update(wbits=values["wbits"], abits=values["abits"], dataset=dataset)
        for name in ("epochs", "seed"):
            if values[name] is not None:
                train_cfg[name] = values[name]
        keyed_train = {k: v for k, v in train_cfg.items() if k != "data_dir"}  # where the data lives is not an input
        t = add(Stage("train", digest("train", keyed_train, __version__), train_cfg))

        build_cfg = dict(self.build)
        if values["clock_mhz"]:
            build_cfg["synth_clk_period_ns"] = 1000.0 / float(values["clock_mhz"])
        # FINN's estimates are for a Xilinx part: the point's, else the default (builds for Lattice parts are shared).
        build_cfg["fpga_part"] = values["part"] if is_xilinx(values["part"]) else DEFAULT_PART
        folded = {**build_cfg, "target_cycles_per_frame": values["target_cycles_per_frame"],
                  "target_fps": values["target_fps"]}  # fmt: skip
        b = add(Stage("build", digest("build", t, folded, __version__), folded, (t,)))
        point_stages = {"train": t}
        if values["prune"] is not None:
            point_stages["unpruned_build"] = b
            from bnnflow.training.prune import PruneConfig

            prune_cfg = PruneConfig.from_mapping(values["prune"]).to_dict()
            p = add(Stage("prune", digest("prune", t, b, prune_cfg, __version__), prune_cfg, (t, b)))
            b = add(Stage("build", digest("build", p, build_cfg, __version__), build_cfg, (p,)))
            point_stages["prune"] = p
        point_stages["build"] = b
        if "sim" in self.stages:
            point_stages["sim"] = add(Stage("sim", digest("sim", b, self.sim, __version__), dict(self.sim), (b,)))
        if "synth" in self.stages:
            synth_cfg = {"part": values["part"], "clock_mhz": values["clock_mhz"]}
            point_stages["synth"] = add(Stage("synth", digest("synth", b, synth_cfg, __version__), synth_cfg, (b,)))
        return Point(digest("point", values)[:12], index, values, point_stages)


def prune_label(prune: dict[str, Any] | None) -> str:
    if prune is None:
        return "unpruned"
    detail = ",".join(f"{k}={v}" for k, v in sorted(prune.items()) if k != "method")
    return f"{prune.get('method', 'tile')}({detail})" if detail else str(prune.get("method", "tile"))


def is_xilinx(part: str) -> bool:
    return str(part).lower().startswith("xc")


def _resolve(base: Path, value: Any) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else (base.parent / path).resolve()


def _point_values(values: dict[str, Any]) -> dict[str, Any]:
    out = {name: values.get(name) for name in AXES if name != "bits"}
    bits = values.get("bits")
    if bits is not None:
        match = _BITS.match(str(bits))
        assert match  # checked when the file was read
        out["wbits"], out["abits"] = int(match[1]), int(match[2])
    out["wbits"] = int(out["wbits"] if out["wbits"] is not None else 1)
    out["abits"] = int(out["abits"] if out["abits"] is not None else 1)
    out["part"] = out["part"] or DEFAULT_PART
    return out


def _axis(path: Path, name: str, raw: Any) -> list[Any]:
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise BnnflowError(f"axis '{name}' in {path} is empty; give at least one value")
    if len({json.dumps(v, sort_keys=True, default=str) for v in values}) != len(values):
        raise BnnflowError(f"axis '{name}' in {path} repeats a value; list each value once")
    return [_axis_value(path, name, v) for v in values]


def _axis_value(path: Path, name: str, value: Any) -> Any:
    from bnnflow.training.prune import PruneConfig

    where = f"axis '{name}' in {path}"
    if name == "prune":
        if value is None or str(value).lower() in ("none", "false", "unpruned"):
            return None
        if not isinstance(value, dict):
            raise BnnflowError(f"{where}: each value is `none` or a mapping of pruning settings, got {value!r}")
        PruneConfig.from_mapping(value)  # checked now; the stage fills in the defaults
        return dict(sorted(value.items()))
    if name == "bits":
        if not _BITS.match(str(value)):
            raise BnnflowError(f"{where}: '{value}' is not of the form w1a1, w2a2, ...")
        return str(value)
    if name in ("wbits", "abits", "epochs", "seed", "target_cycles_per_frame"):
        if value is None and name == "target_cycles_per_frame":
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "seed" else 1):
            raise BnnflowError(f"{where}: '{value}' is not a positive integer")
        return value
    if name in ("target_fps", "clock_mhz"):
        if value is None:
            return None
        if isinstance(value, str):  # YAML 1.1 reads 1e5 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise BnnflowError(f"{where}: '{value}' is not a positive number")
        return float(value)
    if name == "model":
        text = str(value)
        if text.endswith((".yaml", ".yml")):
            if not _resolve(path, text).is_file():
                raise BnnflowError(f"{where}: model config {_resolve(path, text)} not found")
            return text
        from bnnflow.training.models import ZOO

        if text.lower() not in ZOO:
            raise BnnflowError(f"{where}: unknown model '{text}'; use one of {', '.join(ZOO)} or a model-config .yaml")
        return text.lower()
    if name == "part":
        from bnnflow.hw.fpga import TARGETS

        text = str(value)
        if text not in TARGETS and not is_xilinx(text):
            raise BnnflowError(f"{where}: unknown part '{text}'; use one of {', '.join(TARGETS)} or a Xilinx part")
        return text
    return value


def load_sweep(path: Path) -> SweepSpec:
    """Read and check a sweep file; every mistake is one line naming the key and the fix."""
    from bnnflow.configfile import read_mapping

    path = Path(path).resolve()
    raw = read_mapping(path, "sweep file")
    unknown = sorted(set(raw) - set(AXES) - set(SECTIONS))
    if unknown:
        raise BnnflowError(f"unknown axis '{unknown[0]}' in {path}; axes are {', '.join(AXES)} and sections "
                           f"{', '.join(SECTIONS)}")  # fmt: skip
    if "bits" in raw and ({"wbits", "abits"} & set(raw)):
        raise BnnflowError(f"{path} gives both `bits` and `wbits`/`abits`; use one or the other")
    axes = {name: _axis(path, name, raw[name]) for name in AXES if name in raw}
    axes.setdefault("model", ["tfc"])
    if "target_cycles_per_frame" in raw and "target_fps" in raw:
        raise BnnflowError(f"{path} gives both target_cycles_per_frame and target_fps; sweep one of them")
    train = _section(path, raw, "train", TRAIN_FIXED_EXCLUDED)
    build = _section(path, raw, "build", BUILD_FIXED_EXCLUDED)
    sim = _section(path, raw, "sim", set())
    bad_sim = sorted(set(sim) - SIM_FIXED)
    if bad_sim:
        raise BnnflowError(f"unknown sim option '{bad_sim[0]}' in {path}; allowed: {', '.join(sorted(SIM_FIXED))}")
    _check_configs(path, train, build)
    stages = tuple(raw.get("stages") or STAGES)
    bad = [s for s in stages if s not in STAGES]
    if bad or "train" not in stages or "build" not in stages:
        raise BnnflowError(
            f"stages in {path} must include train and build, from {', '.join(STAGES)}; got {list(stages)}"
        )
    security = raw.get("security")
    if security is not None:
        security = _security(path, security)
    name = str(raw.get("name") or path.stem)
    return SweepSpec(path, name, axes, train, build, sim, tuple(s for s in STAGES if s in stages), security, raw)


def _section(path: Path, raw: dict[str, Any], name: str, excluded: set[str]) -> dict[str, Any]:
    section = raw.get(name) or {}
    if not isinstance(section, dict):
        raise BnnflowError(f"section '{name}' in {path} must be a mapping of option: value")
    clash = sorted(set(section) & excluded)
    if clash:
        why = "an axis" if clash[0] in AXES else "set by the sweep"
        raise BnnflowError(f"option '{clash[0]}' in section '{name}' of {path} is {why}; "
                           f"{'give it at the top level' if clash[0] in AXES else 'remove it'}")  # fmt: skip
    out = dict(section)
    if name == "train" and out.get("data_dir") is not None:
        out["data_dir"] = str(_resolve(path, out["data_dir"]))
    return out


def _check_configs(path: Path, train: dict[str, Any], build: dict[str, Any]) -> None:
    from bnnflow.dataflow.config import BuildConfig
    from bnnflow.training.config import TrainConfig

    try:
        TrainConfig().replace(**train)
        BuildConfig().replace(**build)
    except BnnflowError as exc:
        raise BnnflowError(f"{path}: {exc}") from exc


def _security(path: Path, security: Any) -> dict[str, Any]:
    if not isinstance(security, dict):
        raise BnnflowError(f"section 'security' in {path} must be a mapping (tls_ca_file, tls_client_cert, ...)")
    unknown = sorted(set(security) - SECURITY_KEYS)
    if unknown:
        raise BnnflowError(f"unknown security option '{unknown[0]}' in {path}; allowed: "
                           f"{', '.join(sorted(SECURITY_KEYS))}")  # fmt: skip
    out = dict(security)
    for key in SECURITY_FILES:
        if out.get(key) is not None:
            file = _resolve(path, out[key])
            if not file.is_file():
                raise BnnflowError(f"security file {key}: {file} not found; give the path of a PEM file")
            out[key] = str(file)
    return out
