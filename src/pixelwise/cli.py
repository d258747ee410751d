"""Hydra entry points: `train.py` / `pixelwise-train` and `evaluate.py` / `pixelwise-evaluate`.

The only module that knows about Hydra. Training is the lightning-hydra-template sequence:
instantiate datamodule, net, task, callbacks, loggers, trainer; fit; test the best
checkpoint; return the optimized metric (so sweepers can optimize it).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from pixelwise import interrupts
from pixelwise.errors import USER_ERRORS, UserError
from pixelwise.run_dirs import last_checkpoint, run_dir_for, wandb_run_id
from pixelwise.tasks.base import TASK_CLASS_KEY
from pixelwise.weights_settings import apply_weights_settings

log = logging.getLogger("pixelwise")

# The configs and the shipped weights are package data, so an installed (non-editable) package
# runs from any directory; the repository keeps `conf` and `weights` links to them.
PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = str(PACKAGE_DIR / "conf")
WEIGHTS_DIR = PACKAGE_DIR / "weights"
# ${pixelwise.weights_dir:} in the configs: the shipped weights/ are found from any directory.
if not OmegaConf.has_resolver("pixelwise.weights_dir"):
    OmegaConf.register_new_resolver("pixelwise.weights_dir", lambda: str(WEIGHTS_DIR))


def default_cache_dir() -> str:
    """$PIXELWISE_CACHE_DIR, else ~/.cache/pixelwise (Path.home() works without $HOME too)."""
    return os.environ.get("PIXELWISE_CACHE_DIR") or str(Path.home() / ".cache" / "pixelwise")


# ${pixelwise.cache_dir:}: rendered data kept between runs.
if not OmegaConf.has_resolver("pixelwise.cache_dir"):
    OmegaConf.register_new_resolver("pixelwise.cache_dir", default_cache_dir)

# ${pixelwise.run_dir:${ckpt_path},SUBDIR,DEFAULT} and ${pixelwise.wandb_id:${ckpt_path}}: a run
# started from RUN/checkpoints/x.ckpt writes into RUN (pixelwise.run_dirs).
if not OmegaConf.has_resolver("pixelwise.run_dir"):
    OmegaConf.register_new_resolver("pixelwise.run_dir", run_dir_for)
if not OmegaConf.has_resolver("pixelwise.wandb_id"):
    OmegaConf.register_new_resolver("pixelwise.wandb_id", wandb_run_id)

# Overrides that say nothing in a run name (besides `task=`, its first word): where files go and
# how the run is logged or launched do not change the result.
_NAME_SKIP_KEYS = ("logger", "paths", "hydra", "ckpt_path")
# A run of at most this many steps is a quick one: it tests on quick_test_batches batches.
QUICK_RUN_MAX_STEPS = 100


def run_name(task: str, time: str, overrides: Iterable[str] = (), max_length: int = 100) -> str:
    """A unique, readable run name: ``<task>-<time>[-<overrides>]`` (logger.wandb.name).

    Overrides are the command line's (``hydra.overrides.task``) shortened: a dotted key without
    its group (``trainer.max_steps=2`` -> ``max_steps=2``, ``data.train.length=8`` ->
    ``train.length=8``), the last part of a path value,
    values cut at 24 characters; ``task=``, ``logger*``, ``paths.*``, ``hydra*`` and
    ``ckpt_path`` are left out. The overrides are cut with ``~`` so the name fits ``max_length``.
    """
    parts = []
    for item in overrides:
        key, sep, value = str(item).partition("=")
        key = key.lstrip("+~")
        if not sep or key == "task" or key.split(".")[0].split("/")[0] in _NAME_SKIP_KEYS:
            continue
        if "/" in value:
            value = value.rstrip("/").rsplit("/", 1)[-1]
        parts.append(f"{key.split('.', 1)[-1]}={value[:24]}")
    name = f"{task}-{time}"
    rest = ",".join(parts)
    if rest:
        budget = max(max_length - len(name) - 1, 8)
        name += "-" + (rest if len(rest) <= budget else rest[: budget - 1] + "~")
    return name


# ${pixelwise.run_name:${task_name},${now:...},${hydra:overrides.task}} in conf/logger/wandb.yaml.
if not OmegaConf.has_resolver("pixelwise.run_name"):
    OmegaConf.register_new_resolver("pixelwise.run_name", run_name)


def instantiate(node: DictConfig, **kwargs: Any) -> Any:
    """The object of a ``_target_`` config node (``kwargs`` override its keys), containers as plain Python."""
    return hydra.utils.instantiate(node, _convert_="all", **kwargs)


def task_config(cfg: DictConfig) -> DictConfig:
    """``cfg.task`` without its ``run`` node (how train.py runs the task: not an argument of the task class).

    The node keeps its place in a copy of the whole config, so its interpolations resolve.
    """
    if "run" not in cfg.task:
        return cfg.task
    rest = copy.deepcopy(cfg)
    with open_dict(rest.task):
        del rest.task["run"]
    return rest.task


def build_task(cfg: DictConfig) -> L.LightningModule:
    """The task of ``cfg.task`` (without ``task.run``) around the net of ``cfg.model``."""
    net = instantiate(cfg.model)
    return instantiate(task_config(cfg), net=net)


def _instantiate_dict(cfg: DictConfig | None, kind: str) -> list[Any]:
    """Instantiate every `_target_` entry of a config dict (callbacks, loggers)."""
    objects = []
    for name, conf in (cfg or {}).items():
        if conf is None:
            continue
        if not isinstance(conf, DictConfig) or "_target_" not in conf:
            raise UserError(f"{kind}.{name}: expected a config with _target_, got {conf!r}")
        objects.append(instantiate(conf))
    return objects


def _output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def quick_run_reason(cfg: DictConfig) -> str | None:
    """Why a training run is a quick one (a few steps or batches), or None for a real run."""
    if not cfg.get("train", True):
        return None
    trainer = cfg.trainer
    max_steps = trainer.get("max_steps") or -1
    if 0 < max_steps <= QUICK_RUN_MAX_STEPS:
        return f"trainer.max_steps={max_steps}"
    limit = trainer.get("limit_train_batches")
    if limit is not None and limit != 1.0:
        return f"trainer.limit_train_batches={limit}"
    return None


def _limit_the_test_of_a_quick_run(cfg: DictConfig) -> None:
    """A quick run tests on ``quick_test_batches`` batches unless trainer.limit_test_batches is set.

    A 5-step run used to spend minutes testing the whole test set (and the classical baselines
    on it). ``trainer.fast_dev_run`` limits every loop already.
    """
    reason = quick_run_reason(cfg)
    batches = cfg.get("quick_test_batches")
    if reason is None or batches is None or cfg.trainer.get("limit_test_batches") is not None:
        return
    with open_dict(cfg):
        cfg.trainer.limit_test_batches = int(batches)
    log.info(
        "quick run (%s): testing on %d batches; trainer.limit_test_batches=1.0 tests them all",
        reason,
        batches,
    )


def _command_line_overrides() -> list[str]:
    """The run's command-line overrides (empty outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Datamodule, task (with its net), and trainer with callbacks and loggers, from a config."""
    from pixelwise.devices import device_problem

    problem = device_problem(cfg.trainer.get("accelerator"), cfg.trainer.get("devices"))
    if problem:
        raise UserError(problem)
    applied = apply_weights_settings(cfg, _command_line_overrides())
    if applied:
        log.info("settings of model.pretrained's weights: %s", " ".join(applied))
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    task = build_task(cfg)
    _limit_the_test_of_a_quick_run(cfg)
    callbacks = _instantiate_dict(cfg.get("callbacks"), "callbacks")
    loggers = _instantiate_dict(cfg.get("logger"), "logger")
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    interrupts.watch(trainer)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(resolved)
    _summarise_best(loggers, cfg)
    if trainer.is_global_zero:
        out = _output_dir(cfg)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
    return datamodule, task, trainer


def _summarise_best(loggers: list[Any], cfg: DictConfig) -> None:
    """W&B summaries show the best ``optimized_metric`` (max or min by its mode), not its last value."""
    name = cfg.get("optimized_metric")
    if not name:
        return
    mode = cfg.get("optimized_metric_mode", "max")
    if mode not in ("max", "min"):
        raise UserError(f"optimized_metric_mode={mode}: expected max or min")
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            # Rank zero's run; the other ranks' experiment is a no-op stand-in.
            logger.experiment.define_metric(name, summary=mode)


def _finish_wandb() -> None:
    """Close the W&B run of this job (multirun gets one run per job, even on error)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if torch.as_tensor(v).numel() == 1}


def _checkpoint_safe_globals() -> list[Any]:
    """The non-primitive types a Lightning checkpoint may hold, allowed in a weights-only load.

    Plain data only: tensors, dicts, lists, numbers and strings need nothing; these are the
    containers a hyper-parameter section can be (omegaconf's, argparse's, Lightning's) and paths.
    Nothing here can run code when unpickled.
    """
    import argparse
    import collections
    import pathlib

    from lightning.fabric.utilities.data import AttributeDict
    from omegaconf import ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode

    return [
        DictConfig,
        ListConfig,
        ContainerMetadata,
        Metadata,
        AnyNode,
        Any,
        # omegaconf's pickled metadata names these types (ref_type / key_type / element_type).
        dict,
        list,
        int,
        AttributeDict,
        argparse.Namespace,
        collections.defaultdict,
        pathlib.PosixPath,
        pathlib.WindowsPath,
        pathlib.PurePosixPath,
        pathlib.PureWindowsPath,
    ]


def _pickle_imports(file: Path) -> list[str]:
    """``module.name`` of each global the checkpoint's pickle imports, read without unpickling.

    A ``torch.save`` zip archive is scanned in its ``data.pkl``, any other file as one pickle
    stream; a file that is no pickle gives ``[]``.
    """
    import pickletools
    import zipfile

    if zipfile.is_zipfile(file):
        with zipfile.ZipFile(file) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            data = archive.read(names[0]) if names else b""
    else:
        data = file.read_bytes()
    imports: list[str] = []
    strings: list[str | None] = []
    memo: dict[int, str | None] = {}
    last: str | None = None
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name == "GLOBAL":
                imports.append(str(arg).replace(" ", "."))
            elif name == "STACK_GLOBAL" and len(strings) >= 2:
                imports.append(f"{strings[-2]}.{strings[-1]}")
            if imports and imports[-1].startswith("__builtin__."):  # protocol 2's name
                imports[-1] = "builtins." + imports[-1].removeprefix("__builtin__.")
            if isinstance(arg, str) and ("UNICODE" in name or "STRING" in name):
                last = arg
                strings.append(arg)
            elif name == "MEMOIZE":
                memo[len(memo)] = last
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = last
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                last = memo.get(int(arg))
                strings.append(last)
            elif name not in ("FRAME", "PROTO"):
                last = None
    except Exception:  # noqa: BLE001 — the stream ended or is no pickle: what was read so far
        pass
    return imports


def _unsafe_imports(file: Path) -> list[str]:
    """The imports of the checkpoint's pickle that a weights-only load does not allow."""
    allowed = {
        f"{g.__module__}.{getattr(g, '__qualname__', g)}" for g in _checkpoint_safe_globals()
    }
    allowed |= {"collections.OrderedDict", "typing.Any"}
    unsafe = [
        name
        for name in _pickle_imports(file)
        if name not in allowed and not name.startswith(("torch.", "_codecs.", "numpy."))
    ]
    return list(dict.fromkeys(unsafe))


def _first_reason(err: Exception) -> str:
    """The informative line of a (possibly many-line) torch.load error."""
    text = str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            return rest or (lines[i + 1] if i + 1 < len(lines) else line)
    return lines[0] if lines else type(err).__name__


def _task_names_by_target() -> dict[str, str]:
    """``task=`` option of each task class (conf/task/*.yaml ``task._target_``)."""
    names = {}
    for path in sorted((Path(CONFIG_DIR) / "task").glob("*.yaml")):
        target = OmegaConf.select(OmegaConf.load(path), "task._target_", default=None)
        if target:
            names.setdefault(str(target), path.stem)
    return names


def _check_ckpt_task(ckpt: dict, path: str, key: str, expected_target: str | None) -> None:
    """Refuse a checkpoint another task class wrote (PixelwiseTask stores its class in it)."""
    trained_by = ckpt.get(TASK_CLASS_KEY)
    if not trained_by or not expected_target or trained_by == expected_target:
        return
    names = _task_names_by_target()
    was, now = names.get(trained_by), names.get(expected_target)
    was_text = f"task={was}" if was else trained_by
    now_text = f"task={now}" if now else expected_target
    raise UserError(
        f"{key}={path}: this checkpoint was trained by {was_text}, but the run builds {now_text}"
        + (f"; add task={was} (and that run's model/data) to the command" if was else "")
    )


def _check_ckpt(path: str | None, key: str, task_target: str | None = None) -> str | None:
    """A readable checkpoint path, or a one-line UserError.

    The file is read with ``torch.load(weights_only=True)`` plus the globals a Lightning
    checkpoint needs (:func:`_checkpoint_safe_globals`): a pickle that would import anything
    else (a function to call, a class with a ``__reduce__``) is refused before any of it runs.
    """
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{key}={path}: no such checkpoint file")
    try:
        with file.open("rb") as f:
            f.read(1)
        with (
            torch.serialization.safe_globals(_checkpoint_safe_globals()),
            warnings.catch_warnings(),
        ):
            # "Detected pickle protocol 4": the refusal below says what matters.
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 — any failure means "not a checkpoint"
        unsafe = _unsafe_imports(file)
        if unsafe:
            raise UserError(
                f"{key}={path}: refused to load: its pickle would import {', '.join(unsafe)}, "
                "which a Lightning checkpoint never needs (only tensors and plain data are "
                "loaded, with torch.load(weights_only=True))"
            ) from None
        raise UserError(
            f"{key}={path}: cannot read a Lightning checkpoint ({_first_reason(err)})"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise UserError(f"{key}={path}: not a Lightning checkpoint (no 'state_dict')")
    _check_ckpt_task(ckpt, path, key, task_target)
    return str(file)


def train(cfg: DictConfig) -> float | None:
    """Fit (optionally resuming from cfg.ckpt_path), test the best checkpoint, return the metric."""
    ckpt_path = _check_ckpt(
        cfg.get("ckpt_path"), "ckpt_path", OmegaConf.select(cfg, "task._target_", default=None)
    )
    datamodule, task, trainer = build(cfg)
    try:
        if cfg.get("train", True):
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
            name = cfg.get("optimized_metric")
            if name and name not in trainer.callback_metrics and not trainer.interrupted:
                # max_steps can end a run before its first validation; a sweep still needs
                # the metric of the final weights.
                log.info("%s was never computed during fit: validating the final weights", name)
                trainer.validate(task, datamodule=datamodule)
        fit_metrics = _scalars(trainer.callback_metrics)
        if cfg.get("test", False):
            best = (
                trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            )
            if not best:
                log.info(
                    "no best checkpoint (validation did not run, or fast_dev_run): testing the "
                    "final weights"
                )
            trainer.test(task, datamodule=datamodule, ckpt_path=best or None)
        metrics = {**fit_metrics, **_scalars(trainer.callback_metrics)}
    finally:
        _finish_wandb()
    if trainer.is_global_zero:
        (_output_dir(cfg) / "metrics.json").write_text(
            json.dumps(metrics, indent=2, sort_keys=True)
        )
        summary = ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()) if k.count("/") == 1)
        print(f"final metrics: {summary}")
        print(f"run directory: {_output_dir(cfg)}")
    name = cfg.get("optimized_metric")
    if name is None:
        return None
    if name not in metrics:
        raise UserError(f"optimized_metric={name} was not logged; logged: {sorted(metrics)}")
    value = metrics[name]
    return value if math.isfinite(value) else None


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test a checkpoint (or the net's model.pretrained state dict); write metrics.json into the run directory."""
    ckpt_path = _check_ckpt(
        cfg.get("ckpt_path"), "ckpt_path", OmegaConf.select(cfg, "task._target_", default=None)
    )
    if ckpt_path is None and not (cfg.get("model") or {}).get("pretrained"):
        raise UserError(
            "ckpt_path is required: python evaluate.py ckpt_path=PATH "
            "(or model.pretrained=PATH for a state dict the net loads itself)"
        )
    datamodule, task, trainer = build(cfg)
    try:
        trainer.test(task, datamodule=datamodule, ckpt_path=ckpt_path)
    finally:
        _finish_wandb()
    metrics = _scalars(trainer.callback_metrics)
    if trainer.is_global_zero:
        (_output_dir(cfg) / "metrics.json").write_text(
            json.dumps(metrics, indent=2, sort_keys=True)
        )
        print(f"metrics written to {_output_dir(cfg) / 'metrics.json'}")
    return metrics


def _choices() -> dict[str, str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return dict(HydraConfig.get().runtime.choices)
    except Exception:  # noqa: BLE001 — no Hydra runtime (called as a library)
        return {}


def _data_configs_with(key: str) -> list[str]:
    """The data= options whose config sets ``key`` (a dotted path below ``data``)."""
    found = []
    for path in sorted((Path(CONFIG_DIR) / "data").glob("*.yaml")):
        conf = OmegaConf.load(path)
        if OmegaConf.select(conf, key, default=None, throw_on_missing=False) is not None:
            found.append(path.stem)
    return found


def _misfit_message(err: Exception, cfg: DictConfig) -> str | None:
    """A task/model that interpolates a data fact the chosen data does not declare, in config terms."""
    from omegaconf.errors import InterpolationKeyError

    if not isinstance(err, InterpolationKeyError):
        return None
    key = str(err).split("'")[1] if str(err).count("'") >= 2 else ""
    if not key.startswith("data."):
        return None
    choices = _choices()
    task, data = choices.get("task", cfg.get("task_name")), choices.get("data", "?")
    fits = _data_configs_with(key.removeprefix("data."))
    return (
        f"task={task} needs {key}, which data={data} does not declare "
        f"(is data={data} meant for another task?); data configs that declare it: {', '.join(fits)}"
    )


def _port_in_use_message(err: BaseException) -> str | None:
    """DDP's rank 0 could not listen on MASTER_PORT: set by the user, or taken since it was picked."""
    network_error = getattr(torch.distributed, "DistNetworkError", None)
    if network_error is None or not isinstance(err, network_error) or "EADDRINUSE" not in str(err):
        return None
    port, address = os.environ.get("MASTER_PORT", "?"), os.environ.get("MASTER_ADDR", "?")
    return (
        f"DDP: rank 0 could not listen on MASTER_PORT={port} (MASTER_ADDR={address}): the port is "
        "already in use; set MASTER_PORT to a free port, or unset it so that a free one is "
        "picked, and rerun"
    )


def user_error_message(err: BaseException, cfg: DictConfig) -> str | None:
    """The message of a mistake the user can fix, found along ``err``'s causes; None for a bug.

    Hydra wraps what a constructor raises in an ``InstantiationException`` naming the target and
    the config key; a ``ValueError``/``TypeError`` from a constructor is its argument check, so it
    is reported with that key (``model (pixelwise.nets.unet.UNet): base_channels=-3 ...``).
    """
    from hydra.errors import InstantiationException

    seen, current = set(), err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, USER_ERRORS):
            return str(current)
        misfit = _misfit_message(current, cfg) if isinstance(current, Exception) else None
        if misfit:
            return misfit
        port_in_use = _port_in_use_message(current)
        if port_in_use:
            return port_in_use
        if isinstance(current, RuntimeError) and str(current).startswith(
            "Error(s) in loading state_dict"
        ):
            # A checkpoint from before TASK_CLASS_KEY, or the same task with other widths.
            lines = str(current).splitlines()
            detail = lines[1].strip()[:160] if len(lines) > 1 else ""
            choices = _choices()
            return (
                f"ckpt_path={cfg.get('ckpt_path')}: its weights do not fit "
                f"task={choices.get('task', cfg.get('task_name'))} model={choices.get('model', '?')}"
                f" ({detail} ...); pass the task, model and widths it was trained with"
            )
        if isinstance(current, InstantiationException) and isinstance(
            current.__cause__, (ValueError, TypeError)
        ):
            text = str(current)
            target = text.split("'")[1] if text.startswith("Error in call to target") else ""
            key = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in text.splitlines()
                    if line.startswith("full_key:")
                ),
                "",
            )
            where = f"{key} ({target})" if key and target else key or target
            return f"{where}: {current.__cause__}" if where else str(current.__cause__)
        current = current.__cause__ or current.__context__
    return None


def _log_to_files(message: str) -> None:
    """``message`` into the run's log file(s) only: the console has it already."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _full_errors() -> bool:
    import os

    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def _route_library_logs_to_the_run_log() -> None:
    """Lightning's messages and Python warnings into the run's log file as well as the console.

    Lightning gives its loggers their own console handler and stops them propagating when it
    is imported before logging is configured (always, here), so Hydra's ``train.log`` would miss
    them; they now go through Hydra's root handlers (console + file) instead.
    """
    if not logging.getLogger().handlers:
        return  # no Hydra logging (called as a library): leave Lightning's own setup
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        lib = logging.getLogger(name)
        for handler in list(lib.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                lib.removeHandler(handler)
        lib.propagate = True
    logging.captureWarnings(True)


# Warnings nobody running pixelwise can act on; each is silenced by its exact message.
_HARMLESS_WARNINGS = (
    # Lightning warns only when validation has not run yet (a run shorter than
    # val_check_interval); when it has run, a missing key raises instead.
    r"`ModelCheckpoint\(monitor=.*could not find the monitored key",
    # Lightning 2.6's own use of torch's pytree API, deprecated by torch 2.14.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


def _silence_harmless_warnings() -> None:
    for message in _HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def _checkpoint_step(path: Path) -> int | None:
    """The ``global_step`` a Lightning checkpoint was written at (memory-mapped, weights-only), or None."""
    try:
        with torch.serialization.safe_globals(_checkpoint_safe_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ckpt["global_step"])
    except Exception:  # noqa: BLE001 — a half-written or foreign file: say nothing about its step
        return None


# Lightning's RunningStage values, as the interruption message says them (training says nothing;
# prediction has its own line).
_STAGE_WORDS = {
    "sanity_check": "in the sanity check",
    "validate": "during validation",
    "test": "during testing",
}


def interruption_message(signum: int, cfg: DictConfig) -> str:
    """One line for a run ended by ``signum``: where it stopped and, for a fit, how to resume it."""
    name = signal.Signals(signum).name
    trainer = interrupts.watched_trainer()
    state = getattr(trainer, "state", None)
    if trainer is None or state.fn is None:
        return f"interrupted by {name} while setting up the run"
    stage = _STAGE_WORDS.get(state.stage.value) if state.stage is not None else None
    if state.fn.value == "predict":  # task.run.mode=export writes one file per image as it goes
        return (
            f"interrupted by {name}: stopped during prediction; rerun the same command to "
            "continue (images already written are skipped)"
        )
    if state.fn.value != "fit":  # evaluate.py, or the test after a fit
        return f"interrupted by {name}: stopped {stage or 'after ' + state.fn.value}"
    where = f"stopped at step {trainer.global_step}" + (f" ({stage})" if stage else "")
    try:
        last = last_checkpoint(_output_dir(cfg))
    except Exception:  # noqa: BLE001 — no paths.output_dir (called as a library)
        last = None
    if last is None:
        return f"interrupted by {name}: {where}; no checkpoint was written yet"
    step = _checkpoint_step(last)
    saved = f" (saved at step {step})" if step is not None else ""
    return f"interrupted by {name}: {where}; resume with ckpt_path={last}{saved}"


def _report_interruption(signum: int, cfg: DictConfig) -> None:
    """The one-line message on the console (rank zero only) and in the run's log file."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) != 0:
        return
    message = interruption_message(signum, cfg)
    print(message, file=sys.stderr, flush=True)
    _log_to_files(message)


def _run(fn, cfg: DictConfig) -> Any:
    _route_library_logs_to_the_run_log()
    _silence_harmless_warnings()
    interrupts.dump_stacks_on_request()
    with interrupts.catch_signals():
        try:
            return fn(cfg)
        except BaseException as err:
            signum = interrupts.received()
            if signum is not None:
                # Whatever the signal left behind (Lightning's exit, a worker it killed, a rank
                # whose peer left a collective) is the interruption, reported in one line.
                interrupts.stop_reporting_worker_deaths()
                _report_interruption(signum, cfg)
                raise SystemExit(128 + signum) from None
            interrupts.end_launched_ranks()
            if not isinstance(err, Exception):
                raise
            message = user_error_message(err, cfg)
            if message is None or (_full_errors() and not isinstance(err, UserError)):
                # A bug or a full-error request: the traceback also goes into the run's log file.
                _log_to_files(f"run failed:\n{traceback.format_exc()}")
                raise
            print(f"error: {message}", file=sys.stderr)
            if not isinstance(err, UserError):
                print("(HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
            _log_to_files(f"error: {message}")
            _remove_empty_run_dir(cfg)
            # SystemExit passes through Hydra without a traceback.
            raise SystemExit(2) from None


# What Hydra (and build) put into a run directory before anything ran.
_BOOKKEEPING = {".hydra", "train.log", "evaluate.log", "config.yaml"}


def _remove_empty_run_dir(cfg: DictConfig) -> None:
    """A run refused before it started leaves no directory behind (only Hydra's bookkeeping)."""
    try:
        out = _output_dir(cfg)
    except Exception:  # noqa: BLE001 — no Hydra runtime (called as a library): nothing to remove
        return
    if out.is_dir() and {p.name for p in out.iterdir()} <= _BOOKKEEPING:
        import shutil

        logging.shutdown()  # release train.log before removing it
        shutil.rmtree(out, ignore_errors=True)
        cwd = Path.cwd().resolve()
        for parent in out.resolve().parents:  # outputs/<task>/ too, when nothing else is there
            if parent == cwd or cwd not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:
                break


def _train_or_adapt(cfg: DictConfig) -> Any:
    """A fit, or homographic adaptation's ``task.run.mode=export`` / ``task.run.rounds=K`` (pixelwise.export)."""
    from pixelwise.export import Runner, run_mode

    return run_mode(cfg, Runner(instantiate=instantiate, build_task=build_task, train=train))


def _refuse_moved_overrides(overrides: Iterable[str]) -> None:
    """Exit with one line naming the new key when the command line sets a key that moved (``mode=export``)."""
    from pixelwise.export import moved_key

    for item in overrides:
        if item.startswith("-"):
            continue
        key, sep, value = item.partition("=")
        new = moved_key(key.lstrip("+~")) if sep else None
        if new is not None:
            print(
                f"error: {item}: '{key.lstrip('+~')}' moved into the task's config group: "
                f"use {new}={value}",
                file=sys.stderr,
            )
            raise SystemExit(2)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _train_main(cfg: DictConfig) -> float | None:
    return _run(_train_or_adapt, cfg)


def train_main() -> None:
    """`python train.py [overrides]`; `task.run.mode=export` and `task.run.rounds=K` go to pixelwise.export."""
    _refuse_moved_overrides(sys.argv[1:])
    _train_main()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def _evaluate_main(cfg: DictConfig) -> dict[str, float]:
    return _run(evaluate, cfg)


def evaluate_main() -> None:
    """`python evaluate.py ckpt_path=PATH [overrides]`."""
    _refuse_moved_overrides(sys.argv[1:])
    _evaluate_main()
