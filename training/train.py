"""Quantization-aware training loop: seeded, checkpointed every epoch, resumable."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from bnnflow.errors import BnnflowError
from bnnflow.fileio import atomic_path, ensure_writable_dir, write_json
from bnnflow.training.config import Loss, Schedule, TrainConfig
from bnnflow.training.data import Dataset, load_dataset
from bnnflow.training.distill import TEACHER, TeacherConfig, distill_loss, logits_of, one_cycle, train_teacher
from bnnflow.training.models import BNN, ModelSpec, build_model, load_model_config, zoo_spec

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
CHECKPOINT_FORMAT = 1


LOGIT_TABLE_BYTES = 512 * 2**20
"""Largest table of a teacher's logits for every shifted (and flipped) training image."""


@dataclass
class Teacher:
    """A trained float teacher. Its logits for the training set are computed once: for the images as they are, or,
    with augmentation, for every shift (and flip) when that table is small and cheaper than a teacher pass per
    batch; otherwise the teacher runs on each augmented batch."""

    model: nn.Module
    train_logits: torch.Tensor | None
    """(images, classes) without augmentation; (moves, images, classes) with it (Moves.index); or None."""
    info: dict[str, Any]

    def logits(self, idx: np.ndarray, xb: torch.Tensor, moves: Moves | None = None) -> torch.Tensor:
        if self.train_logits is not None:
            rows = torch.from_numpy(idx)
            soft = self.train_logits[rows] if moves is None else self.train_logits[moves.index, rows]
            return soft.to(xb.device)
        with torch.no_grad():
            out: torch.Tensor = self.model(xb)
            return out


def shifted_logits(model: nn.Module, x: np.ndarray, shift: int, flip: bool, device: str) -> torch.Tensor:
    """The teacher's logits for every image under every move: (Moves.count, images, classes)."""
    table = []
    for move in range(Moves.count(shift, flip)):

        def moved(chunk: torch.Tensor, k: int = move) -> torch.Tensor:
            return Moves.of_index(k, len(chunk), shift, flip).apply(chunk, shift)

        table.append(logits_of(model, x, device, moved=moved))
    return torch.stack(table)


def make_teacher(
    cfg: TrainConfig, spec: ModelSpec, data: Dataset, out: Path, log: Callable[[str], None] | None
) -> Teacher | None:
    """The float teacher of a distilled run (trained once and kept in out/teacher.pt), or None."""
    if not cfg.teacher_width:
        return None
    tcfg = TeacherConfig(width=cfg.teacher_width, epochs=cfg.teacher_epochs, seed=cfg.seed)
    aug = augmentation(cfg, data.train_x.shape[1:])
    model, info = train_teacher(spec, data, tcfg, out / TEACHER, aug, cfg.device, log)
    if aug is None:
        return Teacher(model, logits_of(model, data.train_x, cfg.device), info)
    count = Moves.count(*aug)
    if count <= cfg.epochs and count * len(data.train_y) * spec.num_classes * 4 <= LOGIT_TABLE_BYTES:
        return Teacher(model, shifted_logits(model, data.train_x, *aug, cfg.device), info)
    return Teacher(model, None, info)


@dataclass
class TrainResult:
    """What a finished run left behind."""

    spec: ModelSpec
    model: BNN
    metrics: dict[str, Any]
    checkpoint: Path

    @property
    def test_accuracy(self) -> float:
        return float(self.metrics["epochs"][-1]["test_acc"])


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.use_deterministic_algorithms(True, warn_only=True)


def model_spec_for(cfg: TrainConfig, data: Dataset) -> ModelSpec:
    if cfg.model_config is not None:
        spec = load_model_config(cfg.model_config, data.input_shape, data.num_classes)
    else:
        spec = zoo_spec(cfg.model, cfg.wbits, cfg.abits, data.input_shape, data.num_classes)
    if cfg.dropout is not None and spec.dropout != cfg.dropout:
        spec = dataclasses.replace(spec, dropout=cfg.dropout)
    return spec


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """Learning rate at `progress` epochs into the run (fractional)."""
    if cfg.schedule is None:
        cfg = cfg.resolved()
    if cfg.schedule is Schedule.COSINE:
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress / cfg.epochs, 1.0)))
    if cfg.schedule is Schedule.ONECYCLE:
        return one_cycle(cfg.lr, progress / cfg.epochs)
    if cfg.schedule is Schedule.STEP:
        return cfg.lr * 0.5 ** sum(1 for m in cfg.milestones if progress >= m)
    return cfg.lr


def adam(params: Any, lr: float, weight_decay: float, device: str) -> torch.optim.Adam:
    """Adam, fused into one kernel per step on CPU and CUDA (the same update; a sixth less time per LFC step)."""
    fused = torch.device(device).type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


def loss_fn(kind: Loss, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind is Loss.SQR_HINGE:
        signs = torch.full_like(logits, -1.0).scatter_(1, target[:, None], 1.0)
        return torch.clamp(1.0 - signs * logits, min=0.0).pow(2).mean()
    return nn.functional.cross_entropy(logits, target)


def augmentation(cfg: TrainConfig, input_shape: tuple[int, ...]) -> tuple[int, bool] | None:
    """(largest shift, flips) of a run's augmentation, or None without one (also when the shift is 0 and there
    are no flips). The default shift grows with the image: a pixel for every 28 of a grey image's width (MNIST's
    own jitter, 1 pixel), a pixel for every 8 of a colour image's (CIFAR-10's customary 4); images too small for one
    pixel, such as the 8x8 digits, are not shifted (a 1-pixel shift of an 8x8 digit cost TFC 15 points)."""
    if not cfg.augment:
        return None
    colour = input_shape[0] == 3
    shift = cfg.augment_shift if cfg.augment_shift is not None else input_shape[-1] // (8 if colour else 28)
    flip = cfg.augment_flip if cfg.augment_flip is not None else colour
    return (shift, flip) if shift or flip else None


@dataclass
class Moves:
    """Each image's shift (dy, dx in [0, 2 * shift]: the crop's corner in the zero-padded image) and flip."""

    dy: torch.Tensor
    dx: torch.Tensor
    flips: torch.Tensor
    index: torch.Tensor
    """The move's number in [0, count(shift, flip)): ((dy * (2 * shift + 1)) + dx) * (2 if flip else 1) + flipped."""

    @staticmethod
    def count(shift: int, flip: bool) -> int:
        return (2 * shift + 1) ** 2 * (2 if flip else 1)

    @staticmethod
    def draw(n: int, gen: torch.Generator, shift: int, flip: bool) -> Moves:
        dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        flips = torch.rand(n, generator=gen) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
        index = (dy * (2 * shift + 1) + dx) * (2 if flip else 1) + flips.long() * int(flip)
        return Moves(dy, dx, flips, index)

    @staticmethod
    def of_index(move: int, n: int, shift: int, flip: bool) -> Moves:
        """The same move for n images."""
        side = 2 if flip else 1
        position, flipped = divmod(move, side)
        dy, dx = divmod(position, 2 * shift + 1)
        full = torch.full((n,), 1, dtype=torch.long)
        return Moves(full * dy, full * dx, (full * flipped).bool(), full * move)

    def apply(self, x: torch.Tensor, shift: int) -> torch.Tensor:
        """The moved images: one gather for the whole batch (image i's rows from dy[i], its columns from dx[i],
        reversed where flipped)."""
        n, _, h, w = x.shape
        padded = nn.functional.pad(x, (shift, shift, shift, shift))
        cols = torch.arange(w).expand(n, w)
        cols = torch.where(self.flips[:, None], cols.flip(-1), cols) + self.dx[:, None]
        rows = torch.arange(h)[None, :] + self.dy[:, None]
        batch = torch.arange(n)[:, None, None]
        moved = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
        return moved.permute(0, 3, 1, 2).contiguous()


def augment_batch(x: torch.Tensor, gen: torch.Generator, shift: int = 4, flip: bool = True) -> torch.Tensor:
    """Random shifts of up to `shift` pixels (zero-padded crop) and, with `flip`, horizontal flips, per image."""
    return Moves.draw(len(x), gen, shift, flip).apply(x, shift)


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, device: str = "cpu", batch: int = 1000) -> float:
    """Top-1 accuracy in percent."""
    model.eval()
    correct = 0
    for start in range(0, len(y), batch):
        xb = torch.from_numpy(x[start : start + batch]).float().to(device)
        pred = model(xb).argmax(1).cpu().numpy()
        correct += int((pred == y[start : start + batch]).sum())
    return 100.0 * correct / len(y)


def load_state(model: BNN, state: dict[str, torch.Tensor]) -> None:
    """Load a state dict, re-creating the pruning masks (torch.nn.utils.prune) it carries."""
    from bnnflow.training.prune import apply_masks, masks_in_state

    apply_masks(model, masks_in_state(state))
    model.load_state_dict(state)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BnnflowError(f"checkpoint {path} not found; train first with `bnnflow train --out {path.parent}`")
    try:
        ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise BnnflowError(f"checkpoint {path} is unreadable ({type(exc).__name__}); train again") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise BnnflowError(f"{path} is not a bnnflow checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def model_from_checkpoint(path: Path) -> tuple[BNN, dict[str, Any]]:
    """Rebuild the trained network (in eval mode) and return it with the checkpoint dict."""
    ckpt = load_checkpoint(path)
    model = build_model(ModelSpec.from_dict(ckpt["spec"]))
    load_state(model, ckpt["model"])
    model.eval()
    return model, ckpt


def run_epoch(
    model: BNN,
    optimizer: torch.optim.Optimizer,
    data: Dataset,
    cfg: TrainConfig,
    epoch: int,
    lr_of: Callable[[float], float],
    label: str = "",
    teacher: Teacher | None = None,
) -> tuple[float, float]:
    """One pass over the training split in the epoch's seeded order; returns (mean loss, accuracy %).
    `lr_of(progress)` gives the learning rate at a fractional epoch count; with a teacher the loss is distilled."""
    steps = math.ceil(len(data.train_y) / cfg.batch_size)
    aug = augmentation(cfg, data.train_x.shape[1:])
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    order = torch.randperm(len(data.train_y), generator=gen).numpy()
    model.train()
    seen = correct = 0
    loss_sum = 0.0
    bar = tqdm(
        range(steps),
        desc=label or f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not cfg.progress,
        leave=False,
        dynamic_ncols=True,
    )
    for step in bar:
        idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        xb = torch.from_numpy(data.train_x[idx]).float()
        moves = None
        if aug is not None:
            moves = Moves.draw(len(idx), gen, *aug)
            xb = moves.apply(xb, aug[0])
        yb = torch.from_numpy(data.train_y[idx])
        xb, yb = xb.to(cfg.device), yb.to(cfg.device)
        for group in optimizer.param_groups:
            group["lr"] = lr_of(epoch + step / steps)
        logits = model(xb)
        loss = loss_fn(cfg.loss, logits, yb)
        if teacher is not None:
            soft = teacher.logits(idx, xb, moves)
            loss = distill_loss(logits, soft, loss, cfg.distill_alpha, cfg.distill_temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.clip_weights()
        seen += len(idx)
        correct += int((logits.argmax(1) == yb).sum())
        loss_sum += loss.item() * len(idx)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{100.0 * correct / seen:.2f}")
    bar.close()
    return loss_sum / seen, 100.0 * correct / seen


def train(
    cfg: TrainConfig,
    log: Callable[[str], None] | None = None,
    data: Dataset | None = None,
) -> TrainResult:
    """Run QAT as configured (the recipe filling what is unset); returns the trained model and its metrics."""
    cfg = cfg.resolved()
    out = ensure_writable_dir(cfg.out_dir)
    data = data if data is not None else load_dataset(cfg.dataset, cfg.data_dir)
    spec = model_spec_for(cfg, data)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    model = build_model(spec).to(cfg.device)
    rng = torch.get_rng_state()
    optimizer = adam(model.parameters(), cfg.lr, cfg.weight_decay, cfg.device)
    teacher = make_teacher(cfg, spec, data, out, log)
    if teacher is not None:
        torch.set_rng_state(rng)  # the student's dropout does not depend on how the teacher was made
    ckpt_path = out / CHECKPOINT
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if cfg.resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if ckpt["spec"] != spec.to_dict():
            raise BnnflowError(
                f"checkpoint {ckpt_path} is of model '{ckpt['spec']['name']}' with other settings; "
                f"drop --resume or choose another --out"
            )
        load_state(model, ckpt["model"])
        if ckpt.get("optimizer") is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"])
        history = list(ckpt["metrics"])
        start_epoch = int(ckpt["epoch"])
        if log:
            log(f"resuming {spec.name} from epoch {start_epoch} in {ckpt_path}")

    for epoch in range(start_epoch, cfg.epochs):
        began = time.perf_counter()
        train_loss, train_acc = run_epoch(model, optimizer, data, cfg, epoch, lambda p: lr_at(cfg, p), teacher=teacher)
        test_acc = evaluate(model, data.test_x, data.test_y, cfg.device)
        history.append(
            {
                "epoch": epoch + 1,
                "lr": lr_at(cfg, epoch),
                "train_loss": train_loss,
                "train_acc": train_acc,
                "test_acc": test_acc,
                "seconds": round(time.perf_counter() - began, 3),
            }
        )
        save_checkpoint(ckpt_path, model, optimizer, spec, cfg, epoch + 1, history)
        write_json(out / METRICS, _metrics(spec, cfg, history, teacher))
        if log:
            h = history[-1]
            log(
                f"epoch {epoch + 1}/{cfg.epochs}: loss {h['train_loss']:.4f} "
                f"train {h['train_acc']:.2f}% test {test_acc:.2f}% ({h['seconds']:.1f}s)"
            )
    model.eval()
    metrics = _metrics(spec, cfg, history, teacher)
    if not history:
        raise BnnflowError(f"nothing trained: epochs={cfg.epochs}")
    return TrainResult(spec=spec, model=model, metrics=metrics, checkpoint=ckpt_path)


def _metrics(
    spec: ModelSpec, cfg: TrainConfig, history: list[dict[str, Any]], teacher: Teacher | None = None
) -> dict[str, Any]:
    """The run's record. The accuracy that counts is the final epoch's: the shipped model."""
    return {
        "model": spec.to_dict(),
        "dataset": cfg.dataset,
        "config": cfg.to_dict(),
        "teacher": teacher.info if teacher is not None else None,
        "epochs": history,
        "final_test_acc": history[-1]["test_acc"] if history else None,
    }


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    spec: ModelSpec,
    cfg: TrainConfig,
    epoch: int,
    history: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a resumable checkpoint atomically (pruning masks travel in the state dict)."""
    state = {
        **(extra or {}),
        "format": CHECKPOINT_FORMAT,
        "spec": spec.to_dict(),
        "config": cfg.to_dict(),
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": torch.get_rng_state(),
        "metrics": history,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
