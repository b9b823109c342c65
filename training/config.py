"""TrainConfig: every setting of a training run, loadable from YAML and overridable from the command line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from bnnflow.configfile import read_mapping
from bnnflow.errors import BnnflowError


class Loss(StrEnum):
    """Training loss."""

    CROSS_ENTROPY = "cross_entropy"
    SQR_HINGE = "sqr_hinge"  # bnn_pynq's squared hinge on {-1, +1} one-hot targets


class Schedule(StrEnum):
    """Learning-rate schedule over the run."""

    COSINE = "cosine"  # cosine decay from lr to 0 over `epochs`
    STEP = "step"  # halve the rate at each of `milestones` (bnn_pynq's FIXED schedule)
    CONSTANT = "constant"


@dataclass
class TrainConfig:
    """Quantization-aware training of one network."""

    model: str = "tfc"
    """Zoo model name (tfc, sfc, lfc, cnv); ignored when model_config is set."""
    model_config: Path | None = None
    """YAML file describing a user-defined MLP/CNN (see training/models.py: load_model_config)."""
    wbits: int = 1
    """Weight bit width."""
    abits: int = 1
    """Activation bit width."""
    dataset: str = "mnist"
    """digits (embedded, no files), mnist or cifar10."""
    data_dir: Path | None = None
    """Directory holding the data set files; default ../shared/datasets when it exists."""
    out_dir: Path = Path("build/train")
    """Where checkpoint.pt, metrics.json, model.onnx and golden.npz are written."""
    epochs: int = 10
    """Number of training epochs."""
    batch_size: int = 100
    """Mini-batch size."""
    lr: float = 0.02
    """Initial learning rate (Adam)."""
    weight_decay: float = 0.0
    """L2 penalty."""
    schedule: Schedule = Schedule.COSINE
    """Learning-rate schedule."""
    milestones: tuple[int, ...] = ()
    """Epochs at which the STEP schedule halves the rate."""
    loss: Loss = Loss.CROSS_ENTROPY
    """Training loss."""
    augment: bool = False
    """Random crop (pad 4) and horizontal flip; meant for CIFAR-10."""
    seed: int = 0
    """Seed for weights, shuffling and dropout; the same seed gives the same model."""
    threads: int = 0
    """Torch CPU threads; 0 uses every core."""
    device: str = "cpu"
    """Torch device (cpu, or cuda where available)."""
    resume: bool = False
    """Continue from out_dir/checkpoint.pt if it exists."""
    golden_samples: int = 32
    """Number of test images stored with their PyTorch outputs in golden.npz at export."""
    progress: bool = True
    """Show a progress bar with loss and accuracy."""
    prune: dict[str, Any] | None = None
    """Pruning settings for `bnnflow prune --config` (training/prune.py: PruneConfig); plain training ignores them."""

    def replace(self, **overrides: Any) -> TrainConfig:
        """A copy with the given fields replaced; None values are ignored (unset CLI flags)."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise BnnflowError(f"unknown training option(s) {unknown}; allowed: {sorted(fields)}")
        return _coerce(dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None}))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_yaml(cls, path: Path) -> TrainConfig:
        return cls().replace(**read_mapping(path, "training config"))


def _coerce(cfg: TrainConfig) -> TrainConfig:
    try:
        cfg.schedule = Schedule(cfg.schedule)
        cfg.loss = Loss(cfg.loss)
    except ValueError as exc:
        raise BnnflowError(f"invalid training option: {exc}") from exc
    for name in ("model_config", "data_dir", "out_dir"):
        value = getattr(cfg, name)
        if value is not None and not isinstance(value, Path):
            setattr(cfg, name, Path(value))
    cfg.milestones = tuple(int(m) for m in cfg.milestones)
    if cfg.prune is not None:
        from bnnflow.training.prune import PruneConfig

        if not isinstance(cfg.prune, dict):
            raise BnnflowError("the training config's `prune` section must be a mapping of pruning settings")
        PruneConfig.from_mapping(cfg.prune)  # a bad pruning section fails when the file is read
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.golden_samples < 1:
        raise BnnflowError("epochs, batch_size and golden_samples must be at least 1")
    if cfg.lr <= 0:
        raise BnnflowError(f"learning rate must be positive, got {cfg.lr}")
    return cfg
