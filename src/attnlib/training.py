"""The one training loop of the course: every chapter trains through :func:`fit`.

``fit`` runs epochs of minibatch gradient descent, shows a progress bar (a widget in Jupyter when ipywidgets is
installed, as in Colab; plain text otherwise), evaluates after each epoch, and returns a :class:`History` of the
losses, the metrics and the wall time. What a model computes from a batch is the caller's ``loss_fn``, so the
same loop trains a classifier, a tagger or a seq2seq model with teacher forcing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["History", "fit", "accuracy"]

Batch = tuple[Tensor, ...]


@dataclass
class History:
    """What :func:`fit` measured.

    Attributes
    ----------
    train_loss : list of float
        Mean training loss of each epoch.
    step_loss : list of float
        The training loss of every optimizer step, for curves finer than an epoch.
    metrics : dict[str, list[float]]
        Each metric returned by ``evaluate``, once per epoch.
    seconds : float
        Wall time of the whole run, evaluation included.
    epochs : int
        Epochs run (fewer than asked when ``stop_when`` fired).
    """

    train_loss: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    epochs: int = 0

    def last(self, name: str) -> float:
        """The latest value of metric ``name`` (or of ``"train_loss"``)."""
        values = self.train_loss if name == "train_loss" else self.metrics.get(name)
        if not values:
            known = ["train_loss", *self.metrics]
            raise KeyError(f"no values recorded for {name!r}; known: {known}")
        return values[-1]


def _progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar: the notebook widget inside Jupyter when ipywidgets is there, else text on stdout."""
    try:
        from IPython import get_ipython  # noqa: PLC0415

        in_notebook = type(get_ipython()).__name__ == "ZMQInteractiveShell"
    except ImportError:
        in_notebook = False
    if in_notebook:
        try:
            import ipywidgets  # noqa: F401, PLC0415
            from tqdm.notebook import tqdm  # noqa: PLC0415

            return tqdm(total=total, desc=desc, unit="epoch", disable=not enabled)
        except ImportError:
            pass
    from tqdm.std import tqdm  # noqa: PLC0415

    # Text on stdout, not stderr: a stored notebook output on stderr reads as a warning.
    return tqdm(total=total, desc=desc, unit="epoch", disable=not enabled, file=sys.stdout, mininterval=1.0)


def _to(batch: object, device: torch.device) -> Batch:
    if isinstance(batch, Tensor):
        batch = (batch,)
    if not isinstance(batch, tuple | list) or not all(isinstance(t, Tensor) for t in batch):
        raise TypeError(f"each batch must be a tensor or a tuple of tensors, got {type(batch).__name__}")
    return tuple(t.to(device, non_blocking=True) for t in batch)


def fit(
    model: nn.Module,
    batches: Iterable,
    loss_fn: Callable[[nn.Module, Batch], Tensor],
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    evaluate: Callable[[nn.Module], Mapping[str, float]] | None = None,
    stop_when: Callable[[Mapping[str, float]], bool] | None = None,
    max_grad_norm: float | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Train ``model`` for ``epochs`` passes over ``batches`` and return what was measured.

    Each step: move the batch to ``device``, ``loss = loss_fn(model, batch)``, backward, clip the gradient norm
    (if ``max_grad_norm``), ``optimizer.step()``, then ``scheduler.step()`` (if given: the schedule is per step,
    as warm-up schedules are). After each epoch, ``evaluate(model)`` runs in eval mode under ``torch.no_grad()``
    and its metrics are recorded; training stops early when ``stop_when(metrics)`` is true. The model is left in
    eval mode when ``fit`` returns (or raises), ready to be evaluated or plotted.

    Parameters
    ----------
    model : nn.Module
    batches : iterable of tuples of tensors
        Re-iterated on every epoch, e.g. :class:`attnlib.data.Batches`.
    loss_fn : callable (model, batch) -> scalar Tensor
        The training loss of one batch.
    epochs : int >= 1
    optimizer : torch.optim.Optimizer
    scheduler : LRScheduler, optional
        Stepped after every optimizer step.
    evaluate : callable model -> dict of metric name to float, optional
    stop_when : callable metrics -> bool, optional
        Stop after the first epoch whose metrics satisfy it (needs ``evaluate``).
    max_grad_norm : float, optional
        Clip the gradient's global norm to this value.
    device : torch.device or str, optional
        Where batches go; default the device of the model's first parameter.
    progress : bool
        Show a progress bar over the epochs, with the latest loss and metrics.
    desc : str
        The progress bar's label.

    Returns
    -------
    History

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module``, ``optimizer`` is not an optimizer, ``loss_fn`` is not callable,
        ``epochs`` is not an int, or ``loss_fn`` returns something other than a scalar tensor.
    ValueError
        If ``epochs`` < 1, ``batches`` is empty, ``stop_when`` is given without ``evaluate``, or the loss
        becomes NaN or infinite (the step and epoch are named).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(model, batch), got {type(loss_fn).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int):
        raise TypeError(f"epochs must be an int, got {type(epochs).__name__}")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if stop_when is not None and evaluate is None:
        raise ValueError("stop_when needs evaluate: it is called on the metrics that evaluate returns")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)

    history = History()
    start = time.perf_counter()
    bar = _progress_bar(epochs, desc, progress)
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            total, count = 0.0, 0
            for step, batch in enumerate(batches, start=1):
                batch = _to(batch, device)
                loss = loss_fn(model, batch)
                if not isinstance(loss, Tensor) or loss.numel() != 1:
                    raise TypeError(f"loss_fn must return a scalar tensor, got {loss!r:.80}")
                if not torch.isfinite(loss):
                    raise ValueError(
                        f"the loss is {loss.item()} at epoch {epoch}, step {step}; try a lower learning rate"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                value = loss.item()
                history.step_loss.append(value)
                total += value
                count += 1
            if count == 0:
                raise ValueError("batches gave no batch: it is empty")
            history.train_loss.append(total / count)
            shown = {"loss": f"{total / count:.4f}"}
            if evaluate is not None:
                model.eval()
                with torch.no_grad():
                    metrics = dict(evaluate(model))
                for name, value in metrics.items():
                    history.metrics.setdefault(name, []).append(float(value))
                    shown[name] = f"{float(value):.4f}"
            history.epochs = epoch
            bar.set_postfix(shown, refresh=False)
            bar.update(1)
            if stop_when is not None and stop_when(metrics):
                break
    finally:
        bar.close()
        model.eval()
        history.seconds = time.perf_counter() - start
    return history


def accuracy(logits: Tensor, target: Tensor, ignore_index: int | None = None) -> float:
    """The fraction of positions where ``logits.argmax(-1)`` equals ``target``.

    Parameters
    ----------
    logits : Tensor (..., C)
    target : Tensor of int (...)
        The same leading shape as ``logits``.
    ignore_index : int, optional
        Positions whose target equals it (padding) are not counted.

    Returns
    -------
    float
        The accuracy, in [0, 1]. It is never NaN: when no position is counted, a ``ValueError`` is raised
        instead.

    Raises
    ------
    ValueError
        If the shapes do not match, or no position is counted.
    """
    if logits.shape[:-1] != target.shape:
        raise ValueError(
            f"logits (..., C) and target (...) must share the leading shape, got {tuple(logits.shape)} "
            f"and {tuple(target.shape)}"
        )
    keep = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    n = int(keep.sum())
    if n == 0:
        raise ValueError("accuracy of nothing: every target position is ignore_index")
    correct = (logits.argmax(-1) == target) & keep
    return int(correct.sum()) / n
