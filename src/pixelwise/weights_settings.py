"""Settings that travel with a weights file: ``<name>.json`` next to ``<name>.pt``.

A weights file is a plain state dict (loadable anywhere); its sidecar records what it needs
to be used as it was measured::

    {
      "model": {"channels": [32, 32, 64, 64], "head_channels": 128, "batch_norm": true},
      "extraction": {"threshold": 0.005, "nms_radius": 4, "border": 4}
    }

``model``: constructor keys of the net (``model.<key>`` in a config). ``extraction``: keypoint
extraction defaults (``task.detection_threshold``, ``task.nms_radius``, ``task.border``).
:meth:`pixelwise.SuperPoint.from_pretrained` / ``MagicPoint.from_pretrained`` (and so
``match.py weights=``) extract with them; ``train.py`` / ``evaluate.py`` with
``model.pretrained=PATH`` apply them to the config unless the command line sets the same key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelwise.errors import UserError

if TYPE_CHECKING:  # the Python API (pixelwise.pretrained) imports this module without omegaconf
    from omegaconf import DictConfig

__all__ = ["EXTRACTION_TASK_KEYS", "apply_weights_settings", "read_weights_settings"]

# Sidecar extraction key -> task config key.
EXTRACTION_TASK_KEYS = {
    "threshold": "detection_threshold",
    "nms_radius": "nms_radius",
    "border": "border",
}
_SECTIONS = {"model", "extraction", "card"}


def read_weights_settings(weights: str | os.PathLike) -> dict[str, Any]:
    """The sidecar ``<weights stem>.json`` of a weights file as a dict ({} when there is none)."""
    path = Path(weights).expanduser().with_suffix(".json")
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable weights settings JSON ({err})") from err
    unknown = set(settings) - _SECTIONS if isinstance(settings, dict) else {"<not an object>"}
    if unknown:
        raise UserError(f"{path}: unknown sections {sorted(unknown)}; expected {sorted(_SECTIONS)}")
    bad = set(settings.get("extraction", {})) - set(EXTRACTION_TASK_KEYS)
    if bad:
        raise UserError(
            f"{path}: unknown extraction keys {sorted(bad)}; expected {sorted(EXTRACTION_TASK_KEYS)}"
        )
    return settings


def _overridden(overrides: Iterable[str]) -> set[str]:
    return {str(o).split("=", 1)[0].lstrip("+~") for o in overrides}


def apply_weights_settings(cfg: DictConfig, overrides: Iterable[str] = ()) -> list[str]:
    """Set ``cfg.model`` / ``cfg.task`` keys from ``cfg.model.pretrained``'s sidecar; returns "key=value" applied.

    Keys given on the command line (``overrides``) win; keys the config does not have are left
    alone (a MagicPoint sidecar's widths do not touch a model without them).
    """
    from omegaconf import open_dict

    weights = cfg.get("model", {}).get("pretrained") if "model" in cfg else None
    if not weights:
        return []
    settings = read_weights_settings(weights)
    if not settings:
        return []
    given = _overridden(overrides)
    applied = []
    targets = [("model", k, v) for k, v in settings.get("model", {}).items()]
    targets += [
        ("task", EXTRACTION_TASK_KEYS[k], v) for k, v in settings.get("extraction", {}).items()
    ]
    for node, key, value in targets:
        name = f"{node}.{key}"
        if name in given or node not in cfg or key not in cfg[node]:
            continue
        if cfg[node][key] != value:
            with open_dict(cfg):
                cfg[node][key] = value
            applied.append(f"{name}={value}")
    return applied
