"""QAT loop on the embedded digits set: learning, checkpoints, metrics, resume, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from brevitas.nn import QuantLinear

from bnnflow.errors import BnnflowError
from bnnflow.training.config import Loss, Schedule, TrainConfig
from bnnflow.training.data import load_digits
from bnnflow.training.train import CHECKPOINT, METRICS, load_checkpoint, lr_at, model_from_checkpoint, train

pytestmark = pytest.mark.unit  # the unit tier: `make test-fast`

DIGITS = load_digits()


def _cfg(out: Path, **kw) -> TrainConfig:
    base = TrainConfig(model="tfc", dataset="digits", epochs=3, batch_size=50, out_dir=out, progress=False)
    return base.replace(**kw)


def test_training_learns_and_writes_metrics(tmp_path: Path) -> None:
    result = train(_cfg(tmp_path, epochs=4), data=DIGITS)
    metrics = json.loads((tmp_path / METRICS).read_text())
    assert [h["epoch"] for h in metrics["epochs"]] == [1, 2, 3, 4]
    assert all(set(h) >= {"train_acc", "test_acc", "train_loss", "lr"} for h in metrics["epochs"])
    # 10 classes: chance is 10%; a binarized MLP gets well past it within a few epochs.
    assert metrics["final_test_acc"] > 50.0
    assert result.test_accuracy == metrics["final_test_acc"]
    ckpt = load_checkpoint(tmp_path / CHECKPOINT)
    assert ckpt["epoch"] == 4
    # Latent weights stay clipped to [-1, 1] (BinaryConnect).
    for module in result.model.modules():
        if isinstance(module, QuantLinear):
            assert module.weight.abs().max() <= 1.0


def test_resume_continues_from_checkpoint(tmp_path: Path) -> None:
    full = train(_cfg(tmp_path / "full", epochs=3), data=DIGITS)
    # Stop a 3-epoch run after its second epoch, then resume it.
    stopped = _cfg(tmp_path / "stop", epochs=3)
    _train_until(stopped, 2)
    logs: list[str] = []
    resumed = train(stopped.replace(resume=True), data=DIGITS, log=logs.append)
    assert any("resuming tfc from epoch 2" in line for line in logs)
    assert [h["epoch"] for h in resumed.metrics["epochs"]] == [1, 2, 3]
    assert [h["test_acc"] for h in resumed.metrics["epochs"]] == [h["test_acc"] for h in full.metrics["epochs"]]
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _train_until(cfg: TrainConfig, stop_epoch: int) -> None:
    """Run `cfg` but stop (as if killed) once `stop_epoch` epochs are checkpointed."""

    class Stop(Exception):
        pass

    def log(line: str) -> None:
        if line.startswith(f"epoch {stop_epoch}/"):
            raise Stop

    with pytest.raises(Stop):
        train(cfg, data=DIGITS, log=log)
    assert load_checkpoint(cfg.out_dir / CHECKPOINT)["epoch"] == stop_epoch


def test_resume_rejects_other_model(tmp_path: Path) -> None:
    train(_cfg(tmp_path, epochs=1), data=DIGITS)
    with pytest.raises(BnnflowError, match="drop --resume or choose another --out"):
        train(_cfg(tmp_path, epochs=2, wbits=2, abits=2, resume=True), data=DIGITS)


def test_same_seed_same_model_other_seed_differs(tmp_path: Path) -> None:
    a = train(_cfg(tmp_path / "a", epochs=1, seed=3), data=DIGITS)
    b = train(_cfg(tmp_path / "b", epochs=1, seed=3), data=DIGITS)
    c = train(_cfg(tmp_path / "c", epochs=1, seed=4), data=DIGITS)
    sa, sb, sc = (r.model.state_dict() for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_checkpoint_rebuilds_model(tmp_path: Path) -> None:
    result = train(_cfg(tmp_path, epochs=1, wbits=1, abits=2, loss="sqr_hinge"), data=DIGITS)
    model, ckpt = model_from_checkpoint(tmp_path / CHECKPOINT)
    x = torch.from_numpy(DIGITS.test_x[:16]).float().flatten(1)
    assert torch.equal(model(x), result.model(x))
    assert ckpt["config"]["loss"] == "sqr_hinge"


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(BnnflowError, match="unreadable"):
        load_checkpoint(tmp_path / CHECKPOINT)


def test_lr_schedules() -> None:
    cos = TrainConfig(epochs=10, lr=0.1, schedule=Schedule.COSINE)
    assert lr_at(cos, 0) == pytest.approx(0.1)
    assert lr_at(cos, 5) == pytest.approx(0.05)
    assert lr_at(cos, 10) == pytest.approx(0.0, abs=1e-12)
    step = TrainConfig(epochs=10, lr=0.1, schedule=Schedule.STEP, milestones=(2, 6))
    assert [lr_at(step, e) for e in (0, 2, 6)] == pytest.approx([0.1, 0.05, 0.025])


def test_config_from_yaml_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("model: sfc\nepochs: 7\nloss: sqr_hinge\nmilestones: [3, 5]\n")
    cfg = TrainConfig.from_yaml(path).replace(epochs=2, lr=None)
    assert (cfg.model, cfg.epochs, cfg.loss, cfg.milestones, cfg.lr) == (
        "sfc",
        2,
        Loss.SQR_HINGE,
        (3, 5),
        0.02,
    )
    path.write_text("epochz: 3\n")
    with pytest.raises(BnnflowError, match="unknown training option"):
        TrainConfig.from_yaml(path)
    with pytest.raises(BnnflowError, match="invalid training option"):
        TrainConfig().replace(schedule="sometimes")
