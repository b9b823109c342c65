"""Knowledge distillation from a float teacher (Hinton et al.; Polino et al., "Model compression via distillation
and quantization").

The teacher is the student's own topology in floating point, its layers `width` times wider, with ReLU
activations and real-valued inputs. It is trained first (a few epochs; cheap next to QAT), then frozen. The student
learns from a mix of the hard labels and the teacher's softened outputs:

    loss = (1 - alpha) * hard_loss(student, labels) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

Without augmentation the teacher's logits for the whole training set are computed once, so distillation costs the
student's training loop nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from bnnflow.fileio import atomic_path
from bnnflow.training.data import Dataset
from bnnflow.training.models import ModelSpec

TEACHER = "teacher.pt"
TEACHER_MAX_WIDTH = 1024
"""A teacher layer is `width` times the student's, but not wider than this (nor narrower than the student's):
4x LFC's 1024 neurons would cost more than the student's whole training."""


def _wider(n: int, width: float) -> int:
    return max(n, min(round(n * width), TEACHER_MAX_WIDTH)) if width >= 1 else max(1, round(n * width))


class FloatTwin(nn.Module):
    """The float counterpart of a ModelSpec: same layers, `width` times the channels and neurons (capped at
    TEACHER_MAX_WIDTH)."""

    def __init__(self, spec: ModelSpec, width: float, dropout: float) -> None:
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        channels, h, w = spec.input_shape
        for conv in spec.conv:
            out = _wider(conv.channels, width)
            layers += [nn.Conv2d(channels, out, conv.kernel, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
            h, w = h - conv.kernel + 1, w - conv.kernel + 1
            if conv.pool:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
        layers.append(nn.Flatten())
        features = len(spec.inputs) if spec.inputs and not spec.conv else channels * h * w
        for hidden in spec.fc:
            out = _wider(hidden, width)
            layers += [nn.Linear(features, out, bias=False), nn.BatchNorm1d(out), nn.ReLU(), nn.Dropout(dropout)]
            features = out
        layers.append(nn.Linear(features, spec.num_classes))
        self.net = nn.Sequential(*layers)
        if spec.inputs:
            self.register_buffer("input_index", torch.tensor(spec.inputs, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw pixels in [0, 255], as the student takes them."""
        if not self.spec.is_cnn:
            x = x.flatten(1)
            if self.spec.inputs and x.shape[1] != len(self.spec.inputs):
                x = x[:, cast(torch.Tensor, self.input_index)]
        out: torch.Tensor = self.net(x * (2.0 / 255.0) - 1.0)
        return out


@dataclass(frozen=True)
class TeacherConfig:
    width: float = 4.0
    epochs: int = 10
    lr: float = 0.005
    dropout: float = 0.3
    batch_size: int = 100
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def one_cycle(peak: float, progress: float, warmup: float = 0.25, div: float = 25.0, final_div: float = 1e4) -> float:
    """Learning rate of the one-cycle policy (Smith) at `progress` in [0, 1]: a cosine rise from peak/div to peak
    over the first `warmup` of the run, then a cosine fall to peak/final_div."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        start, end, t = peak / div, peak, progress / warmup
    else:
        start, end, t = peak, peak / final_div, (progress - warmup) / (1.0 - warmup)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t))


def train_teacher(
    spec: ModelSpec,
    data: Dataset,
    cfg: TeacherConfig,
    path: Path,
    augment: tuple[int, bool] | None = None,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> tuple[FloatTwin, dict[str, Any]]:
    """Train the float teacher (with the student's augmentation: (largest shift, flips), or None), or load it from
    `path` when it was trained with the same settings."""
    from bnnflow.training.train import adam, augment_batch, evaluate

    settings = {"spec": spec.to_dict(), "teacher": cfg.to_dict(), "augment": list(augment) if augment else None,
                "train_size": len(data.train_y)}  # fmt: skip
    teacher = FloatTwin(spec, cfg.width, cfg.dropout)
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved.get("settings") == settings:
            teacher.load_state_dict(saved["model"])
            return teacher.to(device).eval(), saved["info"]
    torch.manual_seed(cfg.seed + 7919)
    teacher = FloatTwin(spec, cfg.width, cfg.dropout).to(device)
    optimizer = adam(teacher.parameters(), cfg.lr, 0.0, device)
    steps = math.ceil(len(data.train_y) / cfg.batch_size)
    began = time.perf_counter()
    for epoch in range(cfg.epochs):
        gen = torch.Generator().manual_seed(cfg.seed * 7_919 + epoch)
        order = torch.randperm(len(data.train_y), generator=gen).numpy()
        teacher.train()
        for step in range(steps):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            xb = torch.from_numpy(data.train_x[idx]).float()
            if augment is not None:
                xb = augment_batch(xb, gen, *augment)
            yb = torch.from_numpy(data.train_y[idx])
            for group in optimizer.param_groups:
                group["lr"] = one_cycle(cfg.lr, (epoch + step / steps) / cfg.epochs)
            loss = nn.functional.cross_entropy(teacher(xb.to(device)), yb.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    info = {
        "test_acc": evaluate(teacher, data.test_x, data.test_y, device),
        "seconds": round(time.perf_counter() - began, 3),
        **cfg.to_dict(),
    }
    if log:
        log(f"float teacher (x{cfg.width:g} wide): test {info['test_acc']:.2f}% ({info['seconds']:.1f}s)")
    with atomic_path(path) as tmp:
        torch.save({"settings": settings, "model": teacher.state_dict(), "info": info}, tmp)
    return teacher.eval(), info


@torch.no_grad()
def logits_of(
    teacher: nn.Module,
    x: np.ndarray,
    device: str = "cpu",
    batch: int = 1000,
    moved: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The teacher's logits for x in chunks of `batch`, each chunk first passed through `moved` if given."""
    teacher.eval()
    parts = []
    for i in range(0, len(x), batch):
        chunk = torch.from_numpy(x[i : i + batch]).float()
        parts.append(teacher((moved(chunk) if moved else chunk).to(device)).cpu())
    return torch.cat(parts)


def distill_loss(
    student: torch.Tensor, teacher: torch.Tensor, hard: torch.Tensor, alpha: float, temperature: float
) -> torch.Tensor:
    """Hinton's mix of the hard loss and the temperature-softened KL divergence to the teacher."""
    soft = nn.functional.kl_div(
        nn.functional.log_softmax(student / temperature, dim=1),
        nn.functional.log_softmax(teacher / temperature, dim=1),
        log_target=True,
        reduction="batchmean",
    )
    return (1.0 - alpha) * hard + alpha * temperature**2 * soft
