"""Reading attention explorers back out of their HTML (the unit tests and the browser check share it)."""

from __future__ import annotations

import json
import re

DATA = re.compile(r'<script type="application/json" class="ae-data">(.*?)</script>', re.DOTALL)


def payloads(html: str) -> list[dict]:
    """The data of every explorer in ``html``, in order."""
    return [json.loads(m) for m in DATA.findall(html)]


def view(payload: dict, layer: int, head: int | None) -> list[list[float]]:
    """The (Lq, Lk) weights an explorer shows for a layer and a head (``head=None``: the mean of the heads).

    ``layer == len(payload["w"])`` is the rollout.
    """
    scale = payload["scale"]
    if layer == len(payload["w"]):
        return [[v / scale for v in row] for row in payload["rollout"]]
    heads = payload["w"][layer]
    if head is None:
        return [[sum(h[q][k] for h in heads) / len(heads) / scale for k in range(len(heads[0][q]))]
                for q in range(len(heads[0]))]
    return [[v / scale for v in row] for row in heads[head]]


def explorer_outputs(notebook: dict) -> list[tuple[int, str]]:
    """``(cell index, html)`` of every explorer a stored notebook shows."""
    found = []
    for i, cell in enumerate(notebook["cells"]):
        for out in cell.get("outputs", []):
            html = "".join(out.get("data", {}).get("text/html", ""))
            if 'class="attention-explorer' in html:
                found.append((i, html))
    return found
