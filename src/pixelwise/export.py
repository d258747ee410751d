"""`mode=export` (pseudo-labels by trainer.predict) and `rounds=K` (export -> fit -> new teacher) for train.py.

An extension of ``pixelwise.cli`` (it reads the same Hydra config): ``run_mode(cfg)`` dispatches
on the top-level keys ``mode`` (``fit`` | ``export``) and ``rounds`` (null | K).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from pixelwise import cli
from pixelwise.callbacks.pseudo_label_writer import PseudoLabelWriter
from pixelwise.cli import UserError

__all__ = ["MODES", "run_mode", "export", "adaptation_rounds"]

log = logging.getLogger("pixelwise")

MODES = ("fit", "export")


def run_mode(cfg: DictConfig) -> Any:
    """`mode=export` -> :func:`export`; `rounds=K` -> :func:`adaptation_rounds`; otherwise ``cli.train``."""
    mode = cfg.get("mode") or "fit"
    if mode not in MODES:
        raise UserError(f"mode={mode}: expected one of {list(MODES)}")
    if mode == "export":
        export(cfg)
        return None
    if cfg.get("rounds") is not None:
        return adaptation_rounds(cfg)
    return cli.train(cfg)


def _writer(cfg: DictConfig) -> PseudoLabelWriter:
    if cfg.get("export") is None:
        raise UserError(
            "mode=export needs an 'export' config (dirpath, save_heatmap, ...): "
            "use task=homographic_adaptation"
        )
    kwargs = OmegaConf.to_container(cfg.export, resolve=True)
    try:
        return PseudoLabelWriter(**kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"export: {err}") from None


def _progress_bars(cfg: DictConfig) -> list[Any]:
    """The configured progress bar(s) only: checkpoints, metrics and media have nothing to do in predict."""
    bars = {
        name: conf
        for name, conf in (cfg.get("callbacks") or {}).items()
        if conf is not None and str(conf.get("_target_", "")).endswith("ProgressBar")
    }
    return cli._instantiate_dict(OmegaConf.create(bars), "callbacks")


def export(cfg: DictConfig) -> dict[str, Any]:
    """Write the teacher's homographic-adaptation points of every ``data.predict`` image; return the summary.

    Checks that ``export.dirpath`` is writable before any work, skips images whose file
    already exists (the dataset is filtered before predicting, so a rerun after a kill only
    does the missing ones), then runs ``trainer.predict`` with a :class:`PseudoLabelWriter`
    (DDP: each rank exports its share). The summary also goes to ``<run dir>/export.json``.
    """
    writer = _writer(cfg)
    try:
        writer.check_writable()
    except PermissionError as err:
        raise UserError(str(err)) from None
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    try:
        dataset = datamodule.dataset("predict")
        pending = writer.pending(dataset)
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise UserError(str(err)) from None
    total = len(dataset.names)
    log.info(
        "export: %d of %d images to label (%d already in %s)",
        len(pending),
        total,
        total - len(pending),
        writer.dirpath,
    )
    out = Path(cfg.paths.output_dir)
    if not pending:
        summary = {"written": 0, "already_present": total, "skipped": 0, "images": 0}
        summary["dirpath"] = str(writer.dirpath)
        print(f"export: all {total} images already have pseudo-labels in {writer.dirpath}")
        return summary
    if len(pending) < len(dataset):
        datamodule.restrict("predict", pending)
    net = hydra.utils.instantiate(cfg.model, _convert_="all")
    task = hydra.utils.instantiate(cfg.task, net=net, _convert_="all")
    trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=[writer, *_progress_bars(cfg)], logger=False
    )
    trainer.predict(task, datamodule=datamodule, return_predictions=False)
    summary = {**writer.summary, "images_total": total}
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(
            OmegaConf.to_yaml(OmegaConf.to_container(cfg, resolve=True))
        )
        (out / "export.json").write_text(json.dumps(summary, indent=2))
        print(
            f"export: {summary['written']} written, {summary['already_present']} already present, "
            f"{summary['skipped']} unusable skipped; {summary['images_per_s']:.3f} images/s"
        )
        print(f"pseudo-labels: {writer.dirpath}")
    return summary


def adaptation_rounds(cfg: DictConfig) -> float | None:
    """``rounds=K``: K times (export if ``targets=hard``) -> fit a student -> it becomes the next teacher.

    Round k runs in ``<run dir>/round_<k>/`` with its own pseudo-labels, checkpoints, metrics and
    ``detector.pt`` (the student, written by the ``DetectorWeights`` callback), which is the
    teacher of round k+1. ``<run dir>/rounds.json`` lists the rounds; ``<run dir>/metrics.json``
    holds the last round's metrics plus every round's under ``round_<k>/``. Returns the last
    round's optimized metric.
    """
    rounds = cfg.get("rounds")
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise UserError(f"rounds={rounds}: expected null (one fit) or an integer >= 1")
    if OmegaConf.select(cfg, "callbacks.detector_weights") is None:
        raise UserError(
            "rounds=K needs callbacks.detector_weights (pixelwise.callbacks.detector_weights."
            "DetectorWeights) to pass each student on as the next teacher"
        )
    out = Path(cfg.paths.output_dir)
    teacher = cfg.get("teacher")
    history: list[dict[str, Any]] = []
    merged: dict[str, float] = {}
    value = None
    for k in range(1, rounds + 1):
        round_dir = out / f"round_{k}"
        rcfg = copy.deepcopy(cfg)
        with open_dict(rcfg):
            rcfg.paths.output_dir = str(round_dir)
            rcfg.rounds = None
            rcfg.mode = "fit"
            rcfg.teacher = teacher
            rcfg.callbacks.detector_weights.path = str(round_dir / "detector.pt")
        entry: dict[str, Any] = {"round": k, "teacher": teacher, "dir": str(round_dir)}
        if rcfg.get("targets") == "hard":
            labels = round_dir / "pseudo_labels"
            with open_dict(rcfg):
                rcfg.export.dirpath = str(labels)
            entry["export"] = export(rcfg)
            with open_dict(rcfg):
                if "labels" in rcfg.data:
                    rcfg.data.labels = str(labels)
                rcfg.data.train.labels = str(labels)
        log.info("round %d/%d: teacher %s -> %s", k, rounds, teacher or "(default)", round_dir)
        value = cli.train(rcfg)
        student = round_dir / "detector.pt"
        if not student.is_file():
            raise UserError(f"round {k} wrote no {student}: is callbacks.detector_weights enabled?")
        metrics_file = round_dir / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        entry.update(student=str(student), metrics=metrics)
        history.append(entry)
        merged.update({f"round_{k}/{key}": v for key, v in metrics.items()})
        teacher = str(student)
    merged.update(history[-1]["metrics"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "rounds.json").write_text(json.dumps(history, indent=2))
    (out / "metrics.json").write_text(json.dumps(merged, indent=2, sort_keys=True))
    print(f"{rounds} round(s) of homographic adaptation; final detector: {teacher}")
    return value
