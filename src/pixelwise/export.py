"""The run modes of homographic adaptation: pseudo-label export and adaptation rounds, for train.py.

They are configured inside the task's own config group (conf/task/homographic_adaptation.yaml):
``task.run.mode`` (``fit`` | ``export``), ``task.run.rounds`` (null | K) and ``task.run.export``
(the :class:`PseudoLabelWriter`); the teacher and the targets are the task's own arguments
``task.teacher`` and ``task.targets``. ``task.run`` is not an argument of the task class: the
entry point builds the task without it.

Nothing here knows Hydra: ``pixelwise.cli`` (the only module that does) calls
:func:`run_mode` with a :class:`Runner` that turns config nodes into objects and fits.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from pixelwise import interrupts
from pixelwise.callbacks.detector_weights import DetectorWeights
from pixelwise.callbacks.pseudo_label_writer import PseudoLabelWriter
from pixelwise.errors import UserError
from pixelwise.tasks.homographic_adaptation import EXPORTED_TARGETS

__all__ = [
    "MODES",
    "MOVED_KEYS",
    "Runner",
    "adaptation_rounds",
    "export",
    "moved_key",
    "run_mode",
]

log = logging.getLogger("pixelwise")

MODES = ("fit", "export")

# Top-level keys of earlier versions -> their place in the homographic-adaptation task's group.
MOVED_KEYS = {
    "mode": "task.run.mode",
    "rounds": "task.run.rounds",
    "export": "task.run.export",
    "teacher": "task.teacher",
    "targets": "task.targets",
}


@dataclass(frozen=True)
class Runner:
    """What the entry point lends this module: objects from config nodes, and a whole fit.

    ``instantiate(node, **kwargs)`` builds a ``_target_`` node (kwargs override its keys);
    ``build_task(cfg)`` builds the net and the task from ``cfg.model`` and ``cfg.task``
    (without ``task.run``); ``train(cfg)`` fits, tests and returns the optimized metric.
    """

    instantiate: Callable[..., Any]
    build_task: Callable[[DictConfig], L.LightningModule]
    train: Callable[[DictConfig], float | None]


def moved_key(key: str) -> str | None:
    """The new name of a top-level key that moved into the task's group (``export.dirpath`` -> ``task.run.export.dirpath``), else None."""
    head, dot, rest = key.partition(".")
    new = MOVED_KEYS.get(head)
    return None if new is None else new + dot + rest


def _refuse_moved_keys(cfg: DictConfig) -> None:
    """A top-level ``mode``/``rounds``/``export``/``teacher``/``targets`` (``+mode=``, an old experiment file) is an error naming the new key."""
    for key in MOVED_KEYS:
        if key in cfg:
            raise UserError(
                f"{key}: this top-level key moved into the task's config group: use "
                f"{moved_key(key)} (task=homographic_adaptation)"
            )


def run_mode(cfg: DictConfig, runner: Runner) -> Any:
    """``task.run.mode=export`` -> :func:`export`; ``task.run.rounds=K`` -> :func:`adaptation_rounds`; otherwise ``runner.train``."""
    _refuse_moved_keys(cfg)
    run = (cfg.get("task") or {}).get("run") or {}
    mode = run.get("mode") or "fit"
    if mode not in MODES:
        raise UserError(f"task.run.mode={mode}: expected one of {list(MODES)}")
    if mode == "export":
        export(cfg, runner)
        return None
    if run.get("rounds") is not None:
        return adaptation_rounds(cfg, runner)
    return runner.train(cfg)


def _writer(cfg: DictConfig) -> PseudoLabelWriter:
    conf = OmegaConf.select(cfg, "task.run.export")
    if conf is None:
        raise UserError(
            "task.run.mode=export needs a task.run.export config (dirpath, save_heatmap, ...): "
            "use task=homographic_adaptation"
        )
    kwargs = OmegaConf.to_container(conf, resolve=True)
    try:
        return PseudoLabelWriter(**kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"task.run.export: {err}") from None


def _progress_bars(cfg: DictConfig, runner: Runner) -> list[Any]:
    """The configured progress bar(s) only: checkpoints, metrics and media have nothing to do in predict."""
    return [
        runner.instantiate(conf)
        for conf in (cfg.get("callbacks") or {}).values()
        if conf is not None and str(conf.get("_target_", "")).endswith("ProgressBar")
    ]


def export(cfg: DictConfig, runner: Runner) -> dict[str, Any]:
    """Write the teacher's homographic-adaptation points of every ``data.predict`` image; return the summary.

    Checks that ``task.run.export.dirpath`` is writable before any work, skips images whose
    file already exists (the dataset is filtered before predicting, so a rerun after a kill
    only does the missing ones), then runs ``trainer.predict`` with a :class:`PseudoLabelWriter`
    (DDP: each rank exports its share). The summary also goes to ``<run dir>/export.json``.
    """
    writer = _writer(cfg)
    try:
        writer.check_writable()
    except PermissionError as err:
        raise UserError(str(err)) from None
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = runner.instantiate(cfg.data)
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
    task = runner.build_task(cfg)
    trainer = runner.instantiate(
        cfg.trainer, callbacks=[writer, *_progress_bars(cfg, runner)], logger=False
    )
    interrupts.watch(trainer)  # Ctrl-C / SIGTERM: one line saying a rerun continues
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


def _student_key(callbacks: Iterable[tuple[str, Any]]) -> str | None:
    """Name of the callback config that builds a :class:`DetectorWeights` (it writes the student), or None."""
    target = f"{DetectorWeights.__module__}.{DetectorWeights.__qualname__}"
    for name, conf in callbacks:
        if conf is not None and conf.get("_target_") == target:
            return str(name)
    return None


def adaptation_rounds(cfg: DictConfig, runner: Runner) -> float | None:
    """``task.run.rounds=K``: K times (export if ``task.targets`` is hard or exported) -> fit a student -> it becomes the next teacher.

    Round k runs in ``<run dir>/round_<k>/`` (its ``paths.output_dir``) with its own
    pseudo-labels, checkpoints, metrics and ``detector.pt`` (the student, written by the
    :class:`DetectorWeights` callback inside that directory), which is the ``task.teacher`` of
    round k+1. With hard or exported targets the round's export goes to ``round_<k>/pseudo_labels``
    and the data reads it through ``data.labels`` (exported targets: with the heatmaps,
    ``task.run.export.save_heatmap`` and ``data.label_heatmaps`` set). ``<run dir>/rounds.json`` lists the rounds;
    ``<run dir>/metrics.json`` holds the last round's metrics plus every round's under
    ``round_<k>/``. Returns the last round's optimized metric.
    """
    rounds = OmegaConf.select(cfg, "task.run.rounds")
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise UserError(f"task.run.rounds={rounds}: expected null (one fit) or an integer >= 1")
    student_key = _student_key((cfg.get("callbacks") or {}).items())
    if student_key is None:
        raise UserError(
            "task.run.rounds=K needs a DetectorWeights callback (pixelwise.callbacks."
            "detector_weights.DetectorWeights, callbacks=homographic_adaptation) to pass each "
            "student on as the next teacher"
        )
    targets = cfg.task.get("targets")
    # Targets read from an export (the points, or the adapted heatmaps too): each round exports.
    exports = targets in EXPORTED_TARGETS
    if exports and "labels" not in cfg.data:
        raise UserError(
            f"task.run.rounds=K with task.targets={targets} needs a data config with data.labels "
            "(the pseudo-label directory each round's export fills), e.g. data=images"
        )
    out = Path(cfg.paths.output_dir)
    teacher = cfg.task.get("teacher")
    history: list[dict[str, Any]] = []
    merged: dict[str, float] = {}
    value = None
    for k in range(1, rounds + 1):
        round_dir = out / f"round_{k}"
        rcfg = copy.deepcopy(cfg)
        with open_dict(rcfg):
            rcfg.paths.output_dir = str(round_dir)
            rcfg.task.run.rounds = None
            rcfg.task.run.mode = "fit"
            rcfg.task.teacher = teacher
        student = Path(OmegaConf.select(rcfg, f"callbacks.{student_key}.path"))
        if not student.is_relative_to(round_dir):
            raise UserError(
                f"callbacks.{student_key}.path={student}: task.run.rounds=K needs each round's "
                f"student inside the round's directory ({round_dir}); keep the default "
                "${paths.output_dir}/detector.pt"
            )
        entry: dict[str, Any] = {"round": k, "teacher": teacher, "dir": str(round_dir)}
        if exports:
            labels = round_dir / "pseudo_labels"
            with open_dict(rcfg):
                rcfg.task.run.export.dirpath = str(labels)
                if targets == "exported":
                    rcfg.task.run.export.save_heatmap = True
            entry["export"] = export(rcfg, runner)
            with open_dict(rcfg):
                rcfg.data.labels = str(labels)
                if targets == "exported":
                    rcfg.data.label_heatmaps = True
        log.info("round %d/%d: teacher %s -> %s", k, rounds, teacher or "(default)", round_dir)
        value = runner.train(rcfg)
        if not student.is_file():
            raise UserError(
                f"round {k} wrote no {student}: is callbacks.{student_key} (DetectorWeights) enabled?"
            )
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
