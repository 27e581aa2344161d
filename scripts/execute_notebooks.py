"""Re-run notebooks in place, each top to bottom in a fresh kernel of this Python, to refresh stored outputs.

Used by `make execute` (which sets ATTNLIB_DEVICE=cpu, so that stored outputs are made on the CPU).
It reports each notebook's wall time against the course's budget of 60 s per notebook and 6 minutes in all.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

PER_NOTEBOOK_BUDGET_S = 60.0
TOTAL_BUDGET_S = 360.0


class _ThisPython(KernelSpecManager):
    """Always start the kernel with the interpreter running this script (the course's .venv)."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (ipykernel)",
            language="python",
        )


def _settle_streams(nb: nbformat.NotebookNode) -> None:
    """Store streams as a reader's screen shows them: consecutive chunks merged, each line cut at its last \\r.

    A progress bar redraws its line with carriage returns; Jupyter shows only the last drawing, but the raw
    stream holds every one, which the built site would print one under another.
    """
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged: list = []
        for out in cell.outputs:
            if (
                out.output_type == "stream"
                and merged
                and merged[-1].output_type == "stream"
                and (merged[-1].name == out.name)
            ):
                merged[-1].text += out.text
            else:
                merged.append(out)
        for out in merged:
            if out.output_type == "stream" and "\r" in out.text:
                out.text = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in out.text.split("\n"))
        cell.outputs = merged


def execute(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=_ThisPython())
    client = NotebookClient(
        nb, km=km, timeout=timeout, record_timing=False, resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        if km.has_kernel:  # we own this kernel manager, so nbclient leaves the kernel to us
            km.shutdown_kernel(now=True)
    elapsed = time.perf_counter() - start
    _settle_streams(nb)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nbformat.write(nb, path)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    args = parser.parse_args()
    total = 0.0
    for path in args.notebooks:
        print(f"executing {path} ...", flush=True)
        seconds = execute(path, args.timeout)
        total += seconds
        flag = "" if seconds <= PER_NOTEBOOK_BUDGET_S else f"  OVER the {PER_NOTEBOOK_BUDGET_S:.0f} s budget"
        print(f"  {seconds:6.1f} s{flag}", flush=True)
    flag = "" if total <= TOTAL_BUDGET_S else f"  OVER the {TOTAL_BUDGET_S:.0f} s budget"
    print(f"all notebooks: {total:.1f} s{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
