"""Design-space sweeps: the sweep file, stages shared between points, Dask execution that survives a killed worker,
an interrupted sweep that resumes, failed points recorded, and the report."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bnnflow.cli import main
from bnnflow.errors import BnnflowError
from bnnflow.pareto import pareto_front
from bnnflow.sweep import POINTS_DIR, RESULTS, run_sweep
from bnnflow.sweepspec import load_sweep
from tests.test_cli import _assert_one_line_error, _run

# Points that train in seconds: TFC's shape on the embedded digits.
QUICK = """\
name: {name}
model: tfc
dataset: digits
epochs: {epochs}
train: {{golden_samples: 8, batch_size: 50}}
build: {{verify_samples: 2}}
"""


def write_sweep(tmp_path: Path, body: str, name: str = "s", epochs: int = 1) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(QUICK.format(name=name, epochs=epochs) + body)
    return path


def rows_of(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / RESULTS, newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------------ Pareto front
@given(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 20)), min_size=1, max_size=30))
def test_pareto_front_is_exactly_the_undominated_points(points) -> None:
    costs, accs = [float(c) for c, _ in points], [float(a) for _, a in points]
    front = pareto_front(costs, accs)

    def dominates(j: int, i: int) -> bool:
        return costs[j] <= costs[i] and accs[j] >= accs[i] and (costs[j], accs[j]) != (costs[i], accs[i])

    for i in range(len(points)):
        dominated = any(dominates(j, i) for j in range(len(points)))
        duplicate_kept = any((costs[j], accs[j]) == (costs[i], accs[i]) for j in front if j != i)
        assert (i in front) == (not dominated and not duplicate_kept)
    assert [costs[i] for i in front] == sorted(costs[i] for i in front)


# ------------------------------------------------------------------------------------------------ sweep file
def test_points_share_trainings_and_builds(tmp_path) -> None:
    spec = load_sweep(write_sweep(tmp_path, """\
bits: [w1a1, w2a2]
target_cycles_per_frame: [256, 64]
prune: [none, {method: tile, speedup: 2}]
part: [xc7z020clg400-1, ice40-up5k]
"""))  # fmt: skip
    points, stages = spec.points()
    assert len(points) == 16 and len({p.id for p in points}) == 16
    count = {name: sum(1 for s in stages.values() if s.name == name) for name in ("train", "prune", "build", "sim")}
    # One training per bits; one unpruned build per (bits, folding) shared by both parts, one pruning per
    # (bits, folding), one pruned build each; a simulation per build.
    assert count == {"train": 2, "prune": 4, "build": 8, "sim": 8}
    assert sum(1 for s in stages.values() if s.name == "synth") == 16
    again, _ = load_sweep(spec.path).points()
    assert [p.id for p in again] == [p.id for p in points]


def test_model_config_and_fps_axes(tmp_path) -> None:
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "mlp.yaml").write_text("name: mlp\nwbits: 1\nabits: 1\nfc: [32]\n")
    sweep = tmp_path / "s.yaml"
    sweep.write_text("model: [tfc, nets/mlp.yaml]\ndataset: digits\ntarget_fps: [1e5]\nclock_mhz: [50, 100]\n")
    points, stages = load_sweep(sweep).points()
    assert len(points) == 4
    trains = [s.config for s in stages.values() if s.name == "train"]
    assert {t.get("model_config") for t in trains} == {None, str(tmp_path / "nets" / "mlp.yaml")}
    builds = sorted((s.config["synth_clk_period_ns"], s.config["target_fps"]) for s in stages.values()
                    if s.name == "build")  # fmt: skip
    assert builds == [(10.0, 1e5), (10.0, 1e5), (20.0, 1e5), (20.0, 1e5)]


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ("widths: [1, 2]\n", ["unknown axis 'widths'"]),
        ("target_cycles_per_frame: []\n", ["axis 'target_cycles_per_frame'", "is empty"]),
        ("bits: [w1a1, 2bit]\n", ["'2bit' is not of the form w1a1"]),
        ("bits: [w1a1]\nwbits: [1]\n", ["both `bits` and `wbits`"]),
        ("part: [stratix10]\n", ["unknown part 'stratix10'"]),
        ("prune: [{method: tile}]\n", ["tile pruning needs a target"]),
        ("sim: {frames: 3}\n", ["unknown sim option 'frames'"]),
        ("train2: {}\n", ["unknown axis 'train2'"]),
    ],
)
def test_bad_sweep_file_is_one_line(capsys, tmp_path, body, needles) -> None:
    code, _, err = _run(capsys, "sweep", str(write_sweep(tmp_path, body)), "--out", str(tmp_path / "out"))
    _assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "out").exists()


def test_missing_tls_certificate_is_one_line(capsys, tmp_path) -> None:
    sweep = write_sweep(tmp_path, "security: {tls_ca_file: ca.pem, require_encryption: true}\n")
    code, _, err = _run(capsys, "sweep", str(sweep), "--scheduler", "tls://127.0.0.1:9")
    _assert_one_line_error(code, err, "security file tls_ca_file", "ca.pem not found")


def test_report_of_a_directory_that_is_no_sweep_is_one_line(capsys, tmp_path) -> None:
    code, _, err = _run(capsys, "report", str(tmp_path))
    _assert_one_line_error(code, err, f"{tmp_path} is not a sweep directory")


def test_section_option_that_is_an_axis_is_refused(capsys, tmp_path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("model: tfc\ntrain: {epochs: 3}\n")
    code, _, err = _run(capsys, "sweep", str(path))
    _assert_one_line_error(code, err, "option 'epochs' in section 'train'", "is an axis")


def test_unreachable_scheduler_is_one_line(capsys, tmp_path) -> None:
    sweep = write_sweep(tmp_path, "stages: [train, build]\n")
    args = ["sweep", str(sweep), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9", "--timeout", "2"]
    code, _, err = _run(capsys, *args, "--no-progress")
    _assert_one_line_error(code, err, "cannot reach the Dask scheduler at tcp://127.0.0.1:9")


def test_sweep_directory_of_another_sweep_file_is_refused(capsys, tmp_path) -> None:
    a = write_sweep(tmp_path, "stages: [train, build]\ntarget_cycles_per_frame: [64]\n", name="a")
    b = write_sweep(tmp_path, "stages: [train, build]\ntarget_cycles_per_frame: [128]\n", name="b")
    out = tmp_path / "out"
    assert _run(capsys, "sweep", str(a), "--out", str(out), "--serial", "--no-progress")[0] == 0
    code, _, err = _run(capsys, "sweep", str(b), "--out", str(out), "--serial", "--no-progress")
    _assert_one_line_error(code, err, f"sweep directory {out} belongs to a different sweep file", "a.yaml")


# ------------------------------------------------------------------------------------------------ whole points
@pytest.mark.verilator
def test_serial_sweep_measures_every_stage_and_reports(tmp_path) -> None:
    """A folding unpruned and tile-pruned: trained, built, simulated (every output element, per-layer timing) and
    synthesized for a Xilinx and an iCE40 part; then the report."""
    sweep = write_sweep(tmp_path, """\
target_cycles_per_frame: [256]
prune: [none, {method: tile, speedup: 2, steps: 1, epochs_per_step: 0, finetune_epochs: 1}]
part: [xc7z020clg400-1, ice40-up5k]
""", epochs=2)  # fmt: skip
    outcome = run_sweep(sweep, tmp_path / "out", serial=True)
    assert outcome.total == 4 and outcome.ran == 4 and not outcome.failed
    rows = rows_of(outcome.sweep_dir)
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        assert row["differing_elements"] == "0" and row["output_elements"] == row["frames_simulated"] == "8"
        assert float(row["measured_ii"]) == float(row["estimated_ii"])
        assert int(row["luts"]) > 0 and int(row["ffs"]) > 0 and row["rtl_hash"]
        assert all(float(row[f"{s}_s"]) > 0 for s in ("train", "build", "sim", "synth"))
        assert (row["prune"] == "unpruned") == (row["prune_s"] == "")
    by = {(r["target_cycles_per_frame"], r["prune"] != "unpruned", r["part"]): r for r in rows}
    for fold in ("256",):
        # Tile pruning halves the cycles of the same folding; both parts synthesize the same RTL.
        assert int(by[(fold, True, "ice40-up5k")]["estimated_ii"]) * 2 <= int(
            by[(fold, False, "ice40-up5k")]["estimated_ii"]
        )
        assert by[(fold, True, "ice40-up5k")]["rtl_hash"] == by[(fold, True, "xc7z020clg400-1")]["rtl_hash"]
    for point in (outcome.sweep_dir / POINTS_DIR).glob("*.json"):
        layers = json.loads(point.read_text())["stages"]["sim"]["layer_cycles"]
        assert layers and all(layer["measured_cycles"] == layer["expected_cycles"] for layer in layers)

    assert main(["report", str(outcome.sweep_dir)]) == 0
    report = outcome.sweep_dir / "report"
    page = (report / "index.html").read_text()
    parsed = PageParser()
    parsed.feed(page)
    files = {img["data-file"] for img in parsed.images}
    assert files == {"accuracy_vs_cycles.png", "accuracy_vs_luts_xc7z020clg400-1.png",
                     "accuracy_vs_luts_ice40-up5k.png", "layer_cycles.png", "training_curves.png"}  # fmt: skip
    assert all(img["src"].startswith("data:image/png;base64,") for img in parsed.images)
    assert any(h.startswith("Pareto front: accuracy against cycles per frame") for h in parsed.headings)
    front = parsed.tables[0]
    assert front[0][:3] == ["label", "accuracy", "cycles"] and len(front) >= 2
    import matplotlib.image

    for name in files:
        pixels = matplotlib.image.imread(report / name)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and np.ptp(pixels) > 0
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    assert main(["report", str(outcome.sweep_dir)]) == 0
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.headings: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th", "h2"):
            self._in = tag
            if tag == "h2":
                self.headings.append("")
            else:
                self.tables[-1][-1].append("")

    def handle_endtag(self, tag) -> None:
        if tag in ("td", "th", "h2"):
            self._in = None

    def handle_data(self, data) -> None:
        if self._in == "h2":
            self.headings[-1] += data
        elif self._in in ("td", "th"):
            self.tables[-1][-1][-1] += data


def test_failed_point_is_recorded_and_the_others_finish(capsys, tmp_path) -> None:
    """MNIST from an empty directory fails at training; the digits points finish on the embedded cluster."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"model: tfc\ndataset: [digits, mnist]\nepochs: 1\ntarget_cycles_per_frame: [256, 64]\n"
                     f"stages: [train, build]\ntrain: {{data_dir: {empty}, golden_samples: 8}}\n")  # fmt: skip
    out = tmp_path / "out"
    code, _, err = _run(capsys, "sweep", str(sweep), "--out", str(out), "--workers", "2", "--no-progress")
    assert code != 0 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("bnnflow: error: 2 of 4 points failed")
    rows = rows_of(out)
    assert len(rows) == 4
    failed = [r for r in rows if r["status"] == "failed"]
    assert {r["dataset"] for r in failed} == {"mnist"} and len(failed) == 2
    for row in failed:
        assert row["error_stage"] == "train" and "mnist" in row["error"].lower() and str(empty) in row["error"]
        assert "\n" not in row["error"] and "Traceback" not in row["error"]
    assert all(r["status"] == "ok" and int(r["estimated_ii"]) > 0 for r in rows if r["dataset"] == "digits")


def test_killed_worker_costs_only_its_point(tmp_path) -> None:
    """A worker is killed (SIGKILL) in the middle of a stage; the sweep finishes with every point exactly once."""
    from distributed import Client, LocalCluster

    sweep = write_sweep(tmp_path, "stages: [train, build]\ntarget_cycles_per_frame: [256, 128, 64]\n"
                        "seed: [0, 1]\n", epochs=4)  # fmt: skip
    out = tmp_path / "out"
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None, silence_logs=50
        ) as cluster,  # fmt: skip
        Client(cluster) as client,
    ):
        result: dict[str, object] = {}
        runner = threading.Thread(target=lambda: result.update(outcome=run_sweep(
            sweep, out, scheduler=cluster.scheduler_address)))  # fmt: skip
        runner.start()
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline and runner.is_alive():
            from bnnflow.sweep import _executing

            running = client.run(_executing, on_error="return")
            victim = next((w for w, keys in running.items() if isinstance(keys, list) and keys
                           and keys[0].startswith(("train-", "build-"))), None)  # fmt: skip
            time.sleep(0.2)
        assert victim is not None, "no stage was seen running"
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        runner.join(timeout=600)
        assert not runner.is_alive()
        assert victim not in client.scheduler_info()["workers"]  # it did die (its nanny started a new one)
    outcome = result["outcome"]
    assert outcome.total == 6 and not outcome.failed
    rows = rows_of(out)
    assert sorted(r["point"] for r in rows) == sorted({r["point"] for r in rows}) and len(rows) == 6
    assert all(r["status"] == "ok" for r in rows)
    assert len(list((out / POINTS_DIR).glob("*.json"))) == 6
    # Every stage directory was finished: the killed one was cleared and run again.
    assert all((d / "stage.json").is_file() for d in (out / "stages").glob("*/*"))


def test_interrupted_sweep_resumes_without_redoing_finished_points(tmp_path) -> None:
    sweep = write_sweep(tmp_path, "stages: [train, build]\ntarget_cycles_per_frame: [512, 256, 128, 64]\n"
                        "seed: [0, 1]\n")  # fmt: skip
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "bnnflow.cli", "sweep", str(sweep), "--out", str(out), "--workers", "1",
           "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((out / POINTS_DIR).glob("*.json"))) >= 2:
                break
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, as a crash or a lost session would
        proc.wait()
    done_before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / POINTS_DIR).glob("*.json")}
    assert 2 <= len(done_before) < 8, "the sweep was not interrupted midway"
    outcome = run_sweep(sweep, out, serial=True)
    assert outcome.skipped == len(done_before) and outcome.ran == 8 - len(done_before) and not outcome.failed
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / POINTS_DIR).glob("*.json")}
    assert len(after) == 8 and all(after[name] == done_before[name] for name in done_before)
    rows = rows_of(out)
    assert len(rows) == 8 and len({r["point"] for r in rows}) == 8 and all(r["status"] == "ok" for r in rows)
    # Nothing left to do: a third run runs nothing.
    assert run_sweep(sweep, out, serial=True).ran == 0


def test_embedded_cluster_listens_on_localhost_only(tmp_path) -> None:
    from bnnflow.sweep import dask_client

    spec = load_sweep(write_sweep(tmp_path, ""))
    with dask_client(spec, None, 1, 5.0) as client:
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in client.scheduler_info()["workers"])


def _self_signed(tmp_path: Path) -> Path:
    """A certificate and key for localhost that is its own CA (openssl), for a TLS-only Dask cluster."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: it makes the test's TLS certificate")
    pem = tmp_path / "tls.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)  # fmt: skip
    pem.write_text((tmp_path / "cert.pem").read_text() + (tmp_path / "key.pem").read_text())
    return pem


@pytest.mark.slow  # a TLS cluster of its own; the security section's checks run in the default tests
def test_sweep_on_a_tls_cluster_with_security_from_the_sweep_file(tmp_path) -> None:
    from distributed import LocalCluster
    from distributed.security import Security

    pem = _self_signed(tmp_path)
    tls = {f"tls_{who}_{what}": str(pem) for who in ("scheduler", "worker", "client") for what in ("cert", "key")}
    security = Security(tls_ca_file=str(pem), require_encryption=True, **tls)
    sweep = write_sweep(tmp_path, f"stages: [train, build]\ntarget_cycles_per_frame: [128]\nsecurity: "
                        f"{{tls_ca_file: {pem.name}, tls_client_cert: {pem.name}, tls_client_key: {pem.name}, "
                        "require_encryption: true}\n")  # fmt: skip
    with LocalCluster(n_workers=1, threads_per_worker=1, protocol="tls", host="127.0.0.1", security=security,
                      dashboard_address=None, silence_logs=50) as cluster:  # fmt: skip
        assert cluster.scheduler_address.startswith("tls://")
        outcome = run_sweep(sweep, tmp_path / "out", scheduler=cluster.scheduler_address)
        assert outcome.ran == 1 and not outcome.failed
        # Without the certificates, or with others, the same scheduler is refused in one line.
        plain = write_sweep(tmp_path, "stages: [train, build]\n", name="plain")
        with pytest.raises(BnnflowError, match="speaks TLS; give tls_ca_file"):
            run_sweep(plain, tmp_path / "out2", scheduler=cluster.scheduler_address, timeout=3)
        (tmp_path / "other").mkdir()
        other = _self_signed(tmp_path / "other")
        wrong = write_sweep(tmp_path / "other", f"stages: [train, build]\nsecurity: {{tls_ca_file: {other}, "
                            f"tls_client_cert: {other}, tls_client_key: {other}}}\n", name="wrong")  # fmt: skip
        with pytest.raises(BnnflowError, match="cannot reach the Dask scheduler at tls://"):
            run_sweep(wrong, tmp_path / "out3", scheduler=cluster.scheduler_address, timeout=3)


@pytest.mark.slow  # the 24-point benchmark checks the same at scale (BENCHMARKS.md)
def test_a_point_gives_the_same_model_on_dask_and_in_one_process(tmp_path) -> None:
    sweep = write_sweep(tmp_path, "stages: [train, build]\ntarget_cycles_per_frame: [128]\n", epochs=2)
    serial = run_sweep(sweep, tmp_path / "serial", serial=True)
    dask = run_sweep(sweep, tmp_path / "dask", workers=1)
    assert not serial.failed and not dask.failed
    a, b = rows_of(serial.sweep_dir), rows_of(dask.sweep_dir)
    assert [(r["point"], r["accuracy"], r["rtl_hash"]) for r in a] == [
        (r["point"], r["accuracy"], r["rtl_hash"]) for r in b
    ]
