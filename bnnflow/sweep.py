"""`bnnflow sweep`: every point of a sweep file trained, pruned, built, simulated and synthesized as Dask tasks with
their dependencies, on an embedded local cluster or an existing one. Each finished point is written at once to
points/<id>.json and the table results.csv; a rerun does only the points that are not there."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnnflow.errors import BnnflowError
from bnnflow.fileio import ensure_writable_dir, write_json, write_text
from bnnflow.sweepspec import Point, Stage, SweepSpec, load_sweep, prune_label
from bnnflow.sweepstages import StageFailed, one_line, run_stage

SWEEP_META = "sweep.json"
POINTS_DIR = "points"
RESULTS = "results.csv"
RUNS = "runs.json"
WORKER_MEMORY_GB = 3  # what one worker needs at most: a FINN build of SFC/LFC, or training on MNIST

COLUMNS = (
    "point", "label", "status", "model", "wbits", "abits", "dataset", "epochs", "seed", "prune",
    "target_cycles_per_frame", "target_fps", "clock_mhz", "part",
    "accuracy", "unpruned_accuracy", "sparsity",
    "estimated_ii", "measured_ii", "estimated_latency", "measured_latency",
    "frames_simulated", "output_elements", "differing_elements", "pytorch_top1_divergent",
    "luts", "ffs", "bram", "bram_unit", "dsp", "fits", "finn_luts", "finn_bram18", "rtl_hash",
    "train_s", "prune_s", "build_s", "sim_s", "synth_s", "error_stage", "error",
)  # fmt: skip


@dataclass(frozen=True)
class SweepOutcome:
    sweep_dir: Path
    total: int
    skipped: int
    ran: int
    failed: list[str]
    wall_s: float
    where: str

    def lines(self) -> list[str]:
        return [
            f"sweep      {self.total} points: {self.skipped} already done, {self.ran} run on {self.where} "
            f"in {self.wall_s:.1f} s, {len(self.failed)} failed",
            f"results    {self.sweep_dir / RESULTS}",
            f"report     bnnflow report {self.sweep_dir}",
        ]


def claim_dir(spec: SweepSpec, sweep_dir: Path) -> Path:
    """The sweep directory, created for this sweep file or checked to belong to it."""
    sweep_dir = Path(sweep_dir)
    meta = sweep_dir / SWEEP_META
    if meta.is_file():
        old = json.loads(meta.read_text())
        if old.get("hash") != spec.hash:
            raise BnnflowError(f"sweep directory {sweep_dir} belongs to a different sweep file ({old.get('file')}); "
                               "choose another --out, or delete the directory to start over")  # fmt: skip
        return sweep_dir
    if sweep_dir.is_dir() and any(sweep_dir.iterdir()):
        raise BnnflowError(f"{sweep_dir} is not empty and holds no sweep; choose a new or empty --out directory")
    ensure_writable_dir(sweep_dir, "sweep directory")
    shutil.copyfile(spec.path, sweep_dir / "sweep.yaml")
    write_json(meta, {"hash": spec.hash, "file": str(spec.path), "spec": spec.normalized()})
    return sweep_dir


def point_file(sweep_dir: Path, point: Point) -> Path:
    return Path(sweep_dir) / POINTS_DIR / f"{point.id}.json"


def load_points(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every finished point of a sweep directory, in the sweep file's order."""
    files = sorted((Path(sweep_dir) / POINTS_DIR).glob("*.json"))
    return sorted((json.loads(f.read_text()) for f in files), key=lambda p: p["index"])


def record_point(sweep_dir: Path, point: Point, records: dict[str, dict[str, Any]], error: StageFailed | None) -> None:
    """Write one finished point, then the whole table again (both atomically)."""
    data = {
        "id": point.id,
        "index": point.index,
        "label": point.label,
        "values": point.values,
        "status": "failed" if error else "ok",
        "error_stage": error.stage if error else None,
        "error": error.message if error else None,
        "stages": records,
    }
    write_json(point_file(sweep_dir, point), data)
    write_table(sweep_dir)


def write_table(sweep_dir: Path) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for data in load_points(sweep_dir):
        writer.writerow({k: ("" if v is None else v) for k, v in point_row(data).items()})
    write_text(Path(sweep_dir) / RESULTS, buf.getvalue())
    return Path(sweep_dir) / RESULTS


def point_row(data: dict[str, Any]) -> dict[str, Any]:
    """One row of the table: the point's axes and what each stage measured."""
    v, s = data["values"], data["stages"]
    tr, pr, b = s.get("train", {}), s.get("prune"), s.get("build", {})
    sim, syn = s.get("sim", {}), s.get("synth", {})
    finn = b.get("finn_estimate") or {}
    return {
        "point": data["id"],
        "label": data["label"],
        "status": data["status"],
        **{
            k: v.get(k)
            for k in (
                "model",
                "wbits",
                "abits",
                "dataset",
                "seed",
                "target_cycles_per_frame",
                "target_fps",
                "clock_mhz",
                "part",
            )
        },
        "epochs": tr.get("epochs", v.get("epochs")),
        "prune": prune_label(v.get("prune")),
        "accuracy": (pr or tr).get("accuracy"),
        "unpruned_accuracy": tr.get("accuracy"),
        "sparsity": pr.get("sparsity") if pr else (0.0 if tr else None),
        "estimated_ii": b.get("estimated_ii"),
        "measured_ii": sim.get("measured_ii"),
        "estimated_latency": b.get("estimated_latency"),
        "measured_latency": sim.get("latency"),
        "frames_simulated": sim.get("frames"),
        "output_elements": sim.get("output_elements"),
        "differing_elements": sim.get("differing_elements"),
        "pytorch_top1_divergent": sim.get("pytorch_top1_divergent"),
        **{k: syn.get(k) for k in ("luts", "ffs", "bram", "bram_unit", "dsp", "fits")},
        "finn_luts": finn.get("LUT"),
        "finn_bram18": finn.get("BRAM_18K"),
        "rtl_hash": b.get("rtl_hash"),
        **{
            f"{name}_s": s[name]["wall_s"] if name in s else None
            for name in ("train", "prune", "build", "sim", "synth")
        },
        "error_stage": data.get("error_stage"),
        "error": data.get("error"),
    }


def plan(spec: SweepSpec, sweep_dir: Path, retry_failed: bool) -> tuple[list[Point], list[Point], dict[str, Stage]]:
    """(all points, the points still to run, every stage)."""
    points, stages = spec.points()
    todo = []
    for point in points:
        done = point_file(sweep_dir, point)
        if done.is_file() and not (retry_failed and json.loads(done.read_text())["status"] == "failed"):
            continue
        todo.append(point)
    return points, todo, stages


def default_workers() -> int:
    """One single-threaded worker per core, as many as memory holds."""
    import psutil

    cores = os.cpu_count() or 1
    memory_gb = psutil.virtual_memory().total / 2**30
    return max(1, min(cores, int(memory_gb // WORKER_MEMORY_GB)))


@contextmanager
def dask_client(spec: SweepSpec, scheduler: str | None, workers: int | None, timeout: float) -> Iterator[Any]:
    """A client of the embedded LocalCluster (localhost only), or of the scheduler at `scheduler`."""
    from distributed import Client, LocalCluster
    from distributed.security import Security

    if scheduler is None:
        n = workers or default_workers()
        with (
            LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,  # fmt: skip
            Client(cluster) as client,
        ):
            yield client
        return
    if scheduler.startswith("tls://") and not spec.security:
        raise BnnflowError(f"the scheduler {scheduler} speaks TLS; give tls_ca_file, tls_client_cert and "
                           f"tls_client_key in the `security:` section of {spec.path}")  # fmt: skip
    security = Security(**spec.security) if spec.security else None
    try:
        client = Client(scheduler, security=security, timeout=timeout)
    except Exception as exc:  # refused, timed out, a bad address or a TLS handshake that fails
        hint = "start one with `dask scheduler`, or leave out --scheduler to use the embedded cluster"
        raise BnnflowError(f"cannot reach the Dask scheduler at {scheduler} ({one_line(exc)}); {hint}") from None
    try:
        yield client
    finally:
        client.close()


def run_sweep(
    sweep_file: Path,
    sweep_dir: Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    serial: bool = False,
    retry_failed: bool = False,
    timeout: float = 10.0,
    progress: Callable[[int, int, int, int], None] | None = None,
) -> SweepOutcome:
    """Run the points of `sweep_file` that `sweep_dir` does not hold yet. `progress(done, running, failed, total)`
    is called as points finish."""
    spec = load_sweep(sweep_file)
    out = claim_dir(spec, Path(sweep_dir) if sweep_dir else Path("build") / "sweeps" / spec.name).resolve()
    points, todo, stages = plan(spec, out, retry_failed)
    began = time.perf_counter()
    say = progress or (lambda *_a: None)
    if not todo:
        failed, where = [], "nothing (every point is done)"
    elif serial:
        failed = _run_serial(out, todo, stages, say)
        where = "one process, one point after another"
    else:
        with dask_client(spec, scheduler, workers, timeout) as client:
            n = len(client.scheduler_info()["workers"])
            failed = _run_dask(client, out, todo, stages, say)
            where = f"{scheduler or 'the embedded cluster'} ({n} workers)"
    if not (out / RESULTS).is_file():
        write_table(out)
    outcome = SweepOutcome(out, len(points), len(points) - len(todo), len(todo), failed,
                           time.perf_counter() - began, where)  # fmt: skip
    log_run(outcome)
    return outcome


def log_run(outcome: SweepOutcome) -> None:
    """Append this invocation to SWEEP_DIR/runs.json: what ran where, in how long."""
    path = outcome.sweep_dir / RUNS
    runs = json.loads(path.read_text()) if path.is_file() else []
    o = outcome
    runs.append({"points": o.total, "skipped": o.skipped, "ran": o.ran, "failed": len(o.failed),
                 "wall_s": round(o.wall_s, 1), "where": o.where})  # fmt: skip
    write_json(path, runs)


def _run_serial(out: Path, todo: list[Point], stages: dict[str, Stage], say: Any) -> list[str]:
    results: dict[str, dict[str, Any] | StageFailed] = {}
    failed: list[str] = []
    for i, point in enumerate(todo):
        say(i, 1, len(failed), len(todo))
        records: dict[str, dict[str, Any]] = {}
        error = None
        for name, task in point.stages.items():
            if task not in results:
                stage = stages[task]
                deps = [results[d] for d in stage.deps]
                bad = next((d for d in deps if isinstance(d, StageFailed)), None)
                try:
                    if bad is not None:
                        raise bad
                    results[task] = run_stage(str(out), stage, *deps)  # type: ignore[arg-type]
                except StageFailed as exc:
                    results[task] = exc
            result = results[task]
            if isinstance(result, StageFailed):
                error = result
                break
            records[name] = result
        record_point(out, point, records, error)
        if error:
            failed.append(point.id)
    say(len(todo), 0, len(failed), len(todo))
    return failed


def gather_records(*records: dict[str, Any]) -> list[dict[str, Any]]:
    return list(records)


def _run_dask(client: Any, out: Path, todo: list[Point], stages: dict[str, Stage], say: Any) -> list[str]:
    from distributed import wait

    needed = {task for point in todo for task in point.stages.values()}
    futures: dict[str, Any] = {}
    for task, stage in stages.items():  # in dependency order: a stage is added after the stages it reads
        if task in needed:
            deps = [futures[d] for d in stage.deps]
            futures[task] = client.submit(run_stage, str(out), stage, *deps, key=task, pure=False)
    by_future = {}
    owners: dict[str, set[str]] = {}
    for point in todo:
        fut = client.submit(gather_records, *(futures[t] for t in point.stages.values()), key=f"point-{point.id}",
                            pure=False)  # fmt: skip
        by_future[fut.key] = (fut, point)
        for task in point.stages.values():
            owners.setdefault(task, set()).add(point.id)
    pending = {fut for fut, _ in by_future.values()}
    failed: list[str] = []
    done = 0
    while pending:
        say(done, _running(client, owners), len(failed), len(todo))
        try:
            finished, pending = wait(pending, timeout=2.0, return_when="FIRST_COMPLETED")
        except TimeoutError:
            continue
        for fut in finished:
            _, point = by_future[fut.key]
            if fut.status == "finished":
                records = dict(zip(point.stages, fut.result(), strict=True))
                record_point(out, point, records, None)
            else:
                exc = fut.exception()
                error = exc if isinstance(exc, StageFailed) else StageFailed("dask", one_line(exc))
                record_point(out, point, _finished_records(out, point, stages), error)
                failed.append(point.id)
            done += 1
            fut.release()
    say(done, 0, len(failed), len(todo))
    return failed


def _finished_records(out: Path, point: Point, stages: dict[str, Stage]) -> dict[str, dict[str, Any]]:
    """The stages of a failed point that did finish (their results still belong in its row)."""
    from bnnflow.sweepstages import finished

    records = {}
    for name, task in point.stages.items():
        record = finished(out, stages[task])
        if record is None:
            break
        records[name] = record
    return records


def _executing(dask_worker: Any) -> list[str]:
    """On a worker: the keys of the tasks it is running now (not those queued on it)."""
    return [str(ts.key) for ts in dask_worker.state.executing]


def _running(client: Any, owners: dict[str, set[str]]) -> int:
    try:
        executing = client.run(_executing, on_error="return")
    except Exception:  # a worker is restarting: count nothing this time
        return 0
    keys = [key for got in executing.values() if isinstance(got, list) for key in got]
    return len({pid for key in keys for pid in owners.get(key, ())})
