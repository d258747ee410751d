"""Batch collation for dict items whose variable-length entries stay lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import default_collate


class DictCollate:
    """Collate dict items: `list_keys` (e.g. keypoints [N_i,2]) become lists, the rest is stacked."""

    def __init__(self, list_keys: Sequence[str] = ()) -> None:
        self.list_keys = tuple(list_keys)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """list of item dicts -> one batch dict."""
        lists = {k: [item[k] for item in items] for k in self.list_keys if k in items[0]}
        rest = [{k: v for k, v in item.items() if k not in lists} for item in items]
        batch = default_collate(rest)
        batch.update(lists)
        return batch
