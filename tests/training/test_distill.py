"""The training recipes: knowledge distillation from a float teacher, the one-cycle schedule, recipe defaults."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from bnnflow.errors import BnnflowError
from bnnflow.training.config import Schedule, TrainConfig
from bnnflow.training.data import load_digits
from bnnflow.training.distill import TEACHER, FloatTwin, distill_loss, one_cycle
from bnnflow.training.models import ConvLayer, ModelSpec, zoo_spec
from bnnflow.training.train import Moves, Teacher, lr_at, model_spec_for, shifted_logits, train

pytestmark = pytest.mark.unit  # the unit tier: `make test-fast`

DIGITS = load_digits()


def test_zoo_models_default_to_distillation_user_models_to_plain(tmp_path: Path) -> None:
    zoo = TrainConfig(model="sfc").resolved()
    assert (zoo.recipe, zoo.schedule, zoo.teacher_width, zoo.dropout) == ("distill", Schedule.ONECYCLE, 4.0, 0.0)
    assert model_spec_for(zoo, DIGITS).dropout == 0.0
    # The zoo networks train on shifted images; user models do not.
    assert zoo.augment is True and TrainConfig(model="tfc").resolved().augment is True
    assert TrainConfig(model="sfc").replace(augment=False).resolved().augment is False
    user_file = tmp_path / "net.yaml"
    user_file.write_text("fc: [32]\ndropout: 0.1\n")
    user = TrainConfig(model_config=user_file).resolved()
    assert (user.recipe, user.schedule, user.teacher_width, user.dropout) == ("plain", Schedule.COSINE, 0.0, None)
    assert user.augment is False
    assert model_spec_for(user, DIGITS).dropout == 0.1  # the model's own
    named = TrainConfig(model_config=user_file).replace(recipe="distill").resolved()
    assert (named.schedule, named.teacher_width, model_spec_for(named, DIGITS).dropout) == (Schedule.ONECYCLE, 4.0, 0.0)
    # What is set explicitly wins over the recipe.
    mine = TrainConfig(model="tfc").replace(schedule="step", dropout=0.3, teacher_width=2).resolved()
    assert (mine.recipe, mine.schedule, mine.dropout, mine.teacher_width) == ("distill", Schedule.STEP, 0.3, 2.0)
    plain_zoo = TrainConfig(model="tfc").replace(recipe="plain").resolved()
    assert model_spec_for(plain_zoo, DIGITS).dropout == zoo_spec("tfc", 1, 1, DIGITS.input_shape).dropout == 0.2
    with pytest.raises(BnnflowError, match="unknown training recipe 'fast'; choose auto, plain, distill"):
        TrainConfig().replace(recipe="fast")
    with pytest.raises(BnnflowError, match="distill_temperature must be positive"):
        TrainConfig().replace(distill_temperature=0)


def test_one_cycle_rises_then_anneals() -> None:
    peak = 0.02
    lrs = [one_cycle(peak, p / 100) for p in range(101)]
    assert lrs[0] == pytest.approx(peak / 25)
    assert lrs[25] == pytest.approx(peak) and max(lrs) == pytest.approx(peak)
    assert lrs[-1] == pytest.approx(peak / 1e4)
    assert all(a <= b for a, b in itertools.pairwise(lrs[:26]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[25:]))
    cfg = TrainConfig(epochs=8, lr=peak, schedule=Schedule.ONECYCLE)
    assert lr_at(cfg, 2) == pytest.approx(peak) and lr_at(cfg, 8) == pytest.approx(peak / 1e4)


def test_distill_loss() -> None:
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(16, 10, generator=gen, requires_grad=True)
    teacher = torch.randn(16, 10, generator=gen)
    hard = torch.tensor(1.234)
    assert distill_loss(student, teacher, hard, alpha=0.0, temperature=4.0).item() == pytest.approx(1.234)
    # The soft term vanishes when the student agrees with the teacher, and is positive otherwise.
    assert distill_loss(teacher, teacher, hard, alpha=1.0, temperature=4.0).item() == pytest.approx(0.0, abs=1e-6)
    loss = distill_loss(student, teacher, torch.tensor(0.0), alpha=1.0, temperature=2.0)
    assert loss.item() > 0
    loss.backward()
    # One step down the gradient brings the student's softened distribution closer to the teacher's.
    closer = distill_loss(student.detach() - 0.5 * student.grad, teacher, torch.tensor(0.0), 1.0, 2.0)
    assert closer.item() < loss.item()


def test_float_twin_of_cnn_and_pruned_mlp() -> None:
    cnn = ModelSpec("c", 1, 1, 8, (1, 8, 8), conv=(ConvLayer(4, pool=True),), fc=(6,))
    twin = FloatTwin(cnn, width=2.0, dropout=0.0).eval()
    assert twin(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert twin.net[0].out_channels == 8
    mlp = ModelSpec("m", 1, 1, 1, (1, 8, 8), fc=(5,), inputs=(3, 9, 40))
    out = FloatTwin(mlp, width=1.0, dropout=0.0).eval()(torch.zeros(2, 1, 8, 8))
    assert out.shape == (2, 10)


def test_distilled_training_trains_its_teacher_once(tmp_path: Path) -> None:
    cfg = TrainConfig(model="tfc", dataset="digits", epochs=3, batch_size=50, out_dir=tmp_path, progress=False)
    cfg = cfg.replace(teacher_epochs=4)
    logs: list[str] = []
    first = train(cfg, data=DIGITS, log=logs.append)
    info = first.metrics["teacher"]
    assert info["width"] == 4.0 and info["epochs"] == 4
    assert info["test_acc"] > 85.0  # a float MLP 4x wider learns 8x8 digits easily
    assert sum("float teacher (x4 wide)" in line for line in logs) == 1
    assert (tmp_path / TEACHER).is_file()
    assert first.metrics["config"]["recipe"] == "distill"
    logs.clear()
    again = train(cfg, data=DIGITS, log=logs.append)
    assert not any("float teacher" in line for line in logs)  # loaded, not trained again
    assert again.metrics["teacher"] == info
    # Same seed, same teacher: the same student.
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # Other teacher settings train a new one.
    logs.clear()
    train(cfg.replace(teacher_width=2), data=DIGITS, log=logs.append)
    assert sum("float teacher (x2 wide)" in line for line in logs) == 1
    # Without a teacher the run is a different one (the soft targets change the gradients).
    plain = train(cfg.replace(teacher_width=0, out_dir=tmp_path / "plain"), data=DIGITS)
    assert plain.metrics["teacher"] is None
    assert not np.allclose(plain.model.fc[0].weight.detach().numpy(), first.model.fc[0].weight.detach().numpy())


def test_augmentation_shifts_grey_digits_without_flipping() -> None:
    from bnnflow.training.train import augment_batch, augmentation

    assert augmentation(TrainConfig(augment=True), (1, 28, 28)) == (1, False)
    assert augmentation(TrainConfig(augment=True), (3, 32, 32)) == (4, True)
    assert augmentation(TrainConfig(augment=True, augment_shift=1, augment_flip=True), (1, 8, 8)) == (1, True)
    # The default shift grows with the image: a pixel per 28 (grey) or per 8 (colour); none below that.
    assert augmentation(TrainConfig(augment=True), (1, 56, 56)) == (2, False)
    assert augmentation(TrainConfig(augment=True), (1, 27, 27)) is None
    assert augmentation(TrainConfig(augment=True), (1, 8, 8)) is None
    assert augmentation(TrainConfig(augment=True), (3, 8, 8)) == (1, True)
    assert augmentation(TrainConfig(augment=True, augment_flip=True), (1, 8, 8)) == (0, True)
    assert augmentation(TrainConfig(augment=False), (1, 28, 28)) is None
    x = torch.zeros(64, 1, 9, 9)
    x[:, 0, 4, 2] = 1.0  # one pixel left of centre: a flip would move it right of centre
    out = augment_batch(x, torch.Generator().manual_seed(0), shift=2, flip=False)
    ys, xs = (out[:, 0] == 1).nonzero(as_tuple=True)[1:]
    assert len(ys) == 64  # every image keeps its pixel (a shift of 2 cannot push it out)
    assert set((ys - 4).tolist()) == {-2, -1, 0, 1, 2} and set((xs - 2).tolist()) == {-2, -1, 0, 1, 2}


def _looped_moves(x: torch.Tensor, moves: Moves, shift: int) -> torch.Tensor:
    """The moves applied one image at a time with slicing: the definition the batched gather must match."""
    padded = torch.nn.functional.pad(x, (shift, shift, shift, shift))
    h, w = x.shape[2:]
    out = torch.empty_like(x)
    for i in range(len(x)):
        crop = padded[i, :, int(moves.dy[i]) : int(moves.dy[i]) + h, int(moves.dx[i]) : int(moves.dx[i]) + w]
        out[i] = crop.flip(-1) if bool(moves.flips[i]) else crop
    return out


@pytest.mark.parametrize(("shape", "shift", "flip"), [((40, 1, 28, 28), 1, False), ((30, 3, 11, 7), 3, True)])
def test_batched_moves_equal_per_image_crops_and_number_every_move(shape: tuple, shift: int, flip: bool) -> None:
    x = torch.randn(shape)
    moves = Moves.draw(len(x), torch.Generator().manual_seed(5), shift, flip)
    assert torch.equal(moves.apply(x, shift), _looped_moves(x, moves, shift))
    # Move numbers are a bijection onto [0, count): of_index(k) is the move numbered k.
    seen = set()
    for k in range(Moves.count(shift, flip)):
        one = Moves.of_index(k, 2, shift, flip)
        seen.add((int(one.dy[0]), int(one.dx[0]), bool(one.flips[0])))
        assert torch.equal(one.index, torch.full((2,), k))
    assert len(seen) == Moves.count(shift, flip)
    assert set(moves.index.tolist()) <= set(range(Moves.count(shift, flip)))
    for i in range(len(x)):  # a drawn move's number names the same move
        k = int(moves.index[i])
        ref = Moves.of_index(k, 1, shift, flip)
        assert (ref.dy[0], ref.dx[0], ref.flips[0]) == (moves.dy[i], moves.dx[i], moves.flips[i])


def test_teacher_logit_table_equals_the_teacher_on_each_moved_batch() -> None:
    spec = zoo_spec("tfc", 1, 1, (1, 8, 8), 10)
    teacher = FloatTwin(spec, 2.0, 0.0).eval()
    x = np.random.default_rng(0).integers(0, 256, (50, 1, 8, 8)).astype(np.float32)
    table = shifted_logits(teacher, x, 1, True, "cpu")
    assert table.shape == (Moves.count(1, True), 50, 10)
    idx = np.array([3, 17, 17, 42, 0, 9])
    moves = Moves.draw(len(idx), torch.Generator().manual_seed(1), 1, True)
    xb = moves.apply(torch.from_numpy(x[idx]), 1)
    looked_up = Teacher(teacher, table, {}).logits(idx, xb, moves)
    with torch.no_grad():
        direct = teacher(xb)
    torch.testing.assert_close(looked_up, direct, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(looked_up, Teacher(teacher, table[:1].expand_as(table), {}).logits(idx, xb, moves))


def test_teacher_tabulates_moved_logits_only_when_cheaper_than_a_pass_per_batch(tmp_path: Path) -> None:
    from bnnflow.training.train import make_teacher

    cfg = TrainConfig(model="sfc", dataset="digits", augment=True, augment_shift=1, teacher_epochs=1, out_dir=tmp_path)
    cfg = cfg.resolved()
    spec = model_spec_for(cfg, DIGITS)
    moves = Moves.count(1, False)  # grey digits: shifts of up to one pixel, 9 moves
    tabled = make_teacher(cfg.replace(epochs=moves), spec, DIGITS, tmp_path, None)
    assert tabled is not None and tabled.train_logits is not None
    assert tabled.train_logits.shape == (moves, len(DIGITS.train_y), 10)
    per_batch = make_teacher(cfg.replace(epochs=moves - 1), spec, DIGITS, tmp_path, None)
    assert per_batch is not None and per_batch.train_logits is None
    plain = make_teacher(cfg.replace(augment=False), spec, DIGITS, tmp_path, None)
    assert plain is not None and plain.train_logits is not None
    assert plain.train_logits.shape == (len(DIGITS.train_y), 10)
