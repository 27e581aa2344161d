"""The training loop on a tiny linear regression, its bookkeeping and its errors; accuracy by hand."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnlib.data import Batches
from attnlib.training import History, accuracy, fit


def _regression(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3 + 0.05 * torch.randn(64, 1, generator=g)
    torch.manual_seed(seed)
    model = nn.Linear(3, 1)
    return model, x, y, Batches(x, y, batch_size=16, seed=seed)


def _mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x), y)


def test_fit_lowers_the_loss_and_records_history():
    model, x, y, batches = _regression()
    with torch.no_grad():
        before = F.mse_loss(model(x), y).item()
    history = fit(
        model,
        batches,
        _mse,
        epochs=6,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        evaluate=lambda m: {"mse": F.mse_loss(m(x), y).item(), "const": 7},
        progress=False,
    )
    assert isinstance(history, History)
    assert history.epochs == 6
    assert len(history.train_loss) == 6
    assert history.train_loss[-1] < history.train_loss[0] / 4
    assert set(history.metrics) == {"mse", "const"}
    assert len(history.metrics["mse"]) == 6 and history.metrics["const"] == [7.0] * 6
    assert history.metrics["mse"][-1] < before / 4
    with torch.no_grad():
        assert history.metrics["mse"][-1] == pytest.approx(F.mse_loss(model(x), y).item())
    assert history.seconds > 0


def test_train_loss_is_the_mean_over_the_epochs_batches():
    model, _, _, batches = _regression()
    seen = []

    def loss_fn(m, batch):
        loss = _mse(m, batch)
        seen.append(loss.item())
        return loss

    history = fit(
        model, batches, loss_fn, epochs=2, optimizer=torch.optim.SGD(model.parameters(), lr=0.05), progress=False
    )
    assert len(seen) == 2 * len(batches)
    assert history.train_loss == pytest.approx([sum(seen[:4]) / 4, sum(seen[4:]) / 4])
    assert history.step_loss == seen  # every step's loss, in order


def test_stop_when_stops_early():
    model, x, y, batches = _regression()
    calls = []

    def stop_when(metrics):
        calls.append(metrics)
        return len(calls) == 2

    history = fit(
        model,
        batches,
        _mse,
        epochs=10,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        evaluate=lambda m: {"mse": F.mse_loss(m(x), y).item()},
        stop_when=stop_when,
        progress=False,
    )
    assert history.epochs == 2 < 10
    assert len(history.train_loss) == 2 and len(history.metrics["mse"]) == 2
    assert calls[-1] == {"mse": history.metrics["mse"][-1]}


def test_evaluate_runs_in_eval_mode_without_grad_and_training_resumes():
    model, x, _, batches = _regression()
    modes = []

    def loss_fn(m, batch):
        modes.append(("train", m.training, torch.is_grad_enabled()))
        return _mse(m, batch)

    def evaluate(m):
        modes.append(("eval", m.training, torch.is_grad_enabled()))
        assert not m(x).requires_grad
        return {}

    fit(
        model,
        batches,
        loss_fn,
        epochs=2,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        evaluate=evaluate,
        progress=False,
    )
    assert [m for m in modes if m[0] == "eval"] == [("eval", False, False)] * 2
    assert [m for m in modes if m[0] == "train"] == [("train", True, True)] * (2 * len(batches))


def test_scheduler_steps_once_per_optimizer_step():
    model, _, _, batches = _regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps_seen = []

    def factor(step):
        steps_seen.append(step)
        return 1.0 / (1 + step)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    assert steps_seen == [0]  # LambdaLR evaluates the factor once when it is built
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns if scheduler.step() comes before optimizer.step()
        fit(model, batches, _mse, epochs=3, optimizer=optimizer, scheduler=scheduler, progress=False)
    n = 3 * len(batches)
    assert steps_seen == list(range(n + 1))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / (1 + n))


def test_max_grad_norm_bounds_each_step():
    model, _, _, _ = _regression()
    big = Batches(100 * torch.randn(8, 3), torch.randn(8, 1), batch_size=8)  # one step with a huge gradient
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    fit(
        model,
        big,
        _mse,
        epochs=1,
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
        max_grad_norm=0.01,
        progress=False,
    )
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    # plain SGD with lr 1 moves the parameters by exactly the clipped gradient
    assert (after - before).norm().item() == pytest.approx(0.01, rel=1e-4)


def test_nan_loss_raises_naming_the_epoch():
    model, _, _, batches = _regression()
    calls = []

    def loss_fn(m, batch):
        calls.append(1)
        loss = _mse(m, batch)
        return loss * math.nan if len(calls) == len(batches) + 2 else loss  # 2nd step of epoch 2

    with pytest.raises(ValueError, match="epoch 2") as info:
        fit(model, batches, loss_fn, epochs=3, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress=False)
    assert "nan" in str(info.value) and "step 2" in str(info.value)


def _bad_fit_arguments():
    model, _, _, batches = _regression()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    good = dict(model=model, batches=batches, loss_fn=_mse, epochs=1, optimizer=opt, progress=False)
    return good, [
        (dict(model=lambda x: x), TypeError, "model"),
        (dict(optimizer="sgd"), TypeError, "optimizer"),
        (dict(loss_fn=3), TypeError, "loss_fn"),
        (dict(epochs=2.0), TypeError, "epochs"),
        (dict(epochs=True), TypeError, "epochs"),
        (dict(epochs=0), ValueError, "epochs"),
        (dict(stop_when=lambda m: True), ValueError, "evaluate"),
        (dict(batches=[]), ValueError, "empty"),
        (dict(batches=[[1, 2]]), TypeError, "batch"),
        (dict(loss_fn=lambda m, b: F.mse_loss(m(b[0]), b[1], reduction="none")), TypeError, "scalar"),
        (dict(loss_fn=lambda m, b: 1.0), TypeError, "scalar"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_fit_arguments()[1])))
def test_fit_rejects_bad_arguments(case):
    good, cases = _bad_fit_arguments()
    change, error, word = cases[case]
    with pytest.raises(error, match=word):
        fit(**{**good, **change})


def test_progress_bar_writes_to_stdout_not_stderr(capsys):
    model, _, _, batches = _regression()
    fit(
        model,
        batches,
        _mse,
        epochs=2,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        progress=True,
        desc="tiny-regression",
    )
    out, err = capsys.readouterr()
    assert "tiny-regression" in out and "2/2" in out
    assert err == ""


def test_no_progress_bar_writes_nothing(capsys):
    model, _, _, batches = _regression()
    fit(model, batches, _mse, epochs=2, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress=False)
    assert capsys.readouterr() == ("", "")


# ----------------------------------------------------------------------------------------------------------------
# History and accuracy


def test_history_last():
    history = History(train_loss=[3.0, 2.0], metrics={"acc": [0.1, 0.5, 0.9]})
    assert history.last("train_loss") == 2.0
    assert history.last("acc") == 0.9
    with pytest.raises(KeyError, match="loss"):
        history.last("loss")
    with pytest.raises(KeyError):
        History().last("train_loss")


def test_accuracy_by_hand():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])  # predicts 1, 0, 1, 0
    assert accuracy(logits, torch.tensor([1, 1, 1, 1])) == pytest.approx(2 / 4)
    assert accuracy(logits, torch.tensor([1, 0, 1, 0])) == 1.0
    assert accuracy(logits, torch.tensor([0, 1, 0, 1])) == 0.0
    # position 1 is padding: 2 of the 3 counted positions are right
    assert accuracy(logits, torch.tensor([1, -100, 0, 0]), ignore_index=-100) == pytest.approx(2 / 3)


def test_accuracy_on_a_batch_of_sequences():
    logits = torch.zeros(2, 3, 4)
    logits[0, :, 2] = 1.0  # row 0 predicts class 2 everywhere
    logits[1, :, 3] = 1.0  # row 1 predicts class 3 everywhere
    target = torch.tensor([[2, 2, 0], [3, 0, 0]])
    assert accuracy(logits, target) == pytest.approx(3 / 6)
    assert accuracy(logits, target, ignore_index=0) == 1.0


def test_accuracy_errors():
    with pytest.raises(ValueError, match="shape"):
        accuracy(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="ignore_index"):
        accuracy(torch.zeros(3, 2), torch.full((3,), -100), ignore_index=-100)
