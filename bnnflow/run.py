"""The main job, `bnnflow run`: train a small BNN on the embedded digits set, export and check it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bnnflow.training.config import TrainConfig
from bnnflow.training.data import load_dataset
from bnnflow.training.export import ExportResult, export
from bnnflow.training.train import TrainResult, train


@dataclass(frozen=True)
class RunSummary:
    train: TrainResult
    export: ExportResult
    out_dir: Path

    def lines(self) -> list[str]:
        m = self.train.metrics
        chk = self.export.check
        kind = "integer, exact" if chk.integer_outputs else "float, max |diff|"
        return [
            f"model      {self.train.spec.name}-w{self.train.spec.wbits}a{self.train.spec.abits} "
            f"on {m['dataset']} ({len(m['epochs'])} epochs)",
            f"accuracy   test {m['final_test_acc']:.2f}% (best {m['best_test_acc']:.2f}%)",
            f"export     QONNX == PyTorch on {chk.samples} golden inputs ({kind} {chk.max_abs_diff:.3g})",
            f"checkpoint {self.train.checkpoint}",
            f"model      {self.export.model_path}",
            f"golden     {self.export.golden_path}",
        ]


def default_run_config(out_dir: Path, epochs: int = 40, seed: int = 0) -> TrainConfig:
    """TFC-w1a1 shape on 8x8 digits: trains in seconds on a laptop, needs no data files."""
    return TrainConfig(
        model="tfc",
        wbits=1,
        abits=1,
        dataset="digits",
        epochs=epochs,
        batch_size=50,
        lr=0.02,
        seed=seed,
        out_dir=Path(out_dir) / "train",
        golden_samples=64,
    )


def run(cfg: TrainConfig, out_dir: Path, log: Callable[[str], None] | None = None) -> RunSummary:
    data = load_dataset(cfg.dataset, cfg.data_dir)
    trained = train(cfg, log=log, data=data)
    exported = export(trained.model, data, Path(out_dir), cfg.golden_samples)
    return RunSummary(trained, exported, Path(out_dir))
