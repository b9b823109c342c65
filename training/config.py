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
    ONECYCLE = "onecycle"  # one-cycle (Smith): cosine warm-up to lr over the first quarter, cosine decay to ~0


# Named training recipes: the values of the settings a run leaves unset (None).
RECIPES: dict[str, dict[str, Any]] = {
    # The settings as they are: cosine decay, the model's own dropout, no teacher.
    "plain": {"schedule": "cosine", "teacher_width": 0.0},
    # Knowledge distillation from a float teacher 4x wider, the one-cycle schedule, no dropout; the zoo's
    # networks also train on randomly shifted images (BENCHMARKS.md has the comparison).
    "distill": {"schedule": "onecycle", "teacher_width": 4.0, "dropout": 0.0},
}
AUTO = "auto"
"""The default recipe: `distill` for zoo models, `plain` for user models (model_config)."""


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
    recipe: str = AUTO
    """Named recipe (RECIPES) filling the settings left unset: auto, plain or distill."""
    schedule: Schedule | None = None
    """Learning-rate schedule; None: the recipe's."""
    milestones: tuple[int, ...] = ()
    """Epochs at which the STEP schedule halves the rate."""
    loss: Loss = Loss.CROSS_ENTROPY
    """Training loss."""
    dropout: float | None = None
    """Dropout after the input and each hidden FC activation; None: the recipe's, else the model's (zoo: 0.2)."""
    teacher_width: float | None = None
    """Knowledge distillation: the float teacher is the student's topology this many times wider; 0 disables it;
    None: the recipe's."""
    teacher_epochs: int = 10
    """Training epochs of the float teacher."""
    distill_alpha: float = 0.7
    """Weight of the teacher's soft targets in the loss (the hard loss gets 1 - alpha)."""
    distill_temperature: float = 4.0
    """Softmax temperature of the distillation term."""
    augment: bool | None = None
    """Random shifts (zero-pad and crop) and, where augment_flip, horizontal flips of the training images;
    None: the recipe's (distill: every zoo network, which overfits without it; plain: none)."""
    augment_shift: int | None = None
    """Largest shift in pixels; None: a pixel per 28 of a grey image's width (MNIST: 1; its digits are centred by
    their centre of mass, so a 1-pixel jitter is what the test set holds, while 2 pixels left SFC underfitting after
    150 epochs, BENCHMARKS.md), a pixel per 8 of a colour image's (CIFAR-10: 4), and 0, no shifts, for images too
    small for one (the 8x8 digits)."""
    augment_flip: bool | None = None
    """Horizontal flips; None: for colour images only (a mirrored digit is another symbol)."""
    seed: int = 0
    """Seed for weights, shuffling and dropout; the same seed (and threads) gives the same model."""
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

    def resolved(self) -> TrainConfig:
        """A copy with the recipe's values in every setting left unset, and the recipe named."""
        name = self.recipe if self.recipe != AUTO else ("plain" if self.model_config is not None else "distill")
        filled = {k: v for k, v in RECIPES[name].items() if getattr(self, k) is None}
        if self.augment is None:
            from bnnflow.training.models import zoo_augments

            filled["augment"] = name == "distill" and self.model_config is None and zoo_augments(self.model.lower())
        return _coerce(dataclasses.replace(self, recipe=name, **filled))

    @classmethod
    def from_yaml(cls, path: Path) -> TrainConfig:
        return cls().replace(**read_mapping(path, "training config"))


def _coerce(cfg: TrainConfig) -> TrainConfig:
    if cfg.recipe != AUTO and cfg.recipe not in RECIPES:
        raise BnnflowError(f"unknown training recipe '{cfg.recipe}'; choose {AUTO}, {', '.join(RECIPES)}")
    try:
        cfg.schedule = Schedule(cfg.schedule) if cfg.schedule is not None else None
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
    if (cfg.teacher_width or 0) < 0 or cfg.teacher_epochs < 1 or not 0.0 <= cfg.distill_alpha <= 1.0:
        raise BnnflowError("teacher_width must be >= 0, teacher_epochs >= 1 and distill_alpha in [0, 1]")
    if cfg.distill_temperature <= 0:
        raise BnnflowError(f"distill_temperature must be positive, got {cfg.distill_temperature}")
    if cfg.dropout is not None and not 0.0 <= cfg.dropout < 1.0:
        raise BnnflowError(f"dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.lr <= 0:
        raise BnnflowError(f"learning rate must be positive, got {cfg.lr}")
    return cfg
