"""The device override and the seeding helper."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import attnlib
from attnlib.utils import eval_mode


def test_default_device_follows_cuda(monkeypatch):
    monkeypatch.delenv("ATTNLIB_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert attnlib.get_device().type == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert attnlib.get_device() == torch.device("cpu")


def test_override_to_cpu(monkeypatch):
    monkeypatch.setenv("ATTNLIB_DEVICE", "cpu")
    assert attnlib.get_device() == torch.device("cpu")
    monkeypatch.setenv("ATTNLIB_DEVICE", "  cpu ")
    assert attnlib.get_device() == torch.device("cpu")


def test_override_to_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("ATTNLIB_DEVICE", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="ATTNLIB_DEVICE='cuda' asks for CUDA"):
        attnlib.get_device()


def test_override_to_cuda_when_present(monkeypatch):
    monkeypatch.setenv("ATTNLIB_DEVICE", "cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert attnlib.get_device() == torch.device("cuda", 0)


def test_override_nonsense(monkeypatch):
    monkeypatch.setenv("ATTNLIB_DEVICE", "gpu please")
    with pytest.raises(ValueError, match="ATTNLIB_DEVICE='gpu please' is not a device"):
        attnlib.get_device()


def test_set_seed_makes_every_generator_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3)  # noqa: NPY002 -- the global generator is the point

    gen = attnlib.set_seed(123)
    first = draw()
    from_gen = torch.rand(2, generator=gen)
    gen = attnlib.set_seed(123)
    second = draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])
    assert torch.equal(from_gen, torch.rand(2, generator=gen))
    attnlib.set_seed(124)
    assert not torch.equal(draw()[2], first[2])


@pytest.mark.parametrize(("seed", "error"), [(1.5, TypeError), ("1", TypeError), (True, TypeError), (-1, ValueError)])
def test_set_seed_rejects(seed, error):
    with pytest.raises(error, match="seed"):
        attnlib.set_seed(seed)


def test_version_matches_pyproject():
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', text, re.MULTILINE).group(1) == attnlib.__version__


def test_rounded_by_hand():
    assert attnlib.rounded(torch.tensor(0.12345)) == 0.123
    assert attnlib.rounded(torch.tensor([[1.0049, -0.0001]]), 2) == [[1.0, 0.0]]
    assert str(attnlib.rounded(torch.tensor([-0.0001]))) == "[0.0]"  # no "-0.0" in stored outputs
    assert attnlib.rounded(torch.tensor([2.5]), 0) == [2.0]  # round half to even, like torch.round


@pytest.mark.parametrize(
    ("args", "error"), [(([1.0],), TypeError), ((torch.ones(1), 1.5), TypeError), ((torch.ones(1), -1), ValueError)]
)
def test_rounded_rejects(args, error):
    with pytest.raises(error):
        attnlib.rounded(*args)


def test_submodules_come_with_the_package():
    assert attnlib.attention.NadarayaWatson and attnlib.plot.attention_heatmap and attnlib.functional.causal_mask


def test_median_seconds_times_each_call_and_returns_the_median(monkeypatch):
    import attnlib.utils as utils

    clock = iter([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # three timed calls lasting 1, 3 and 2 seconds
    monkeypatch.setattr(utils.time, "perf_counter", lambda: next(clock))
    calls = []
    assert utils.median_seconds(lambda: calls.append(1), repeats=3, warmup=2) == 2.0
    assert len(calls) == 5  # two warm-up calls, untimed, and three timed ones


def test_median_seconds_rejects_bad_counts():
    import attnlib.utils as utils

    with pytest.raises(ValueError, match="repeats"):
        utils.median_seconds(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        utils.median_seconds(lambda: None, warmup=-1)


def test_eval_mode_sets_eval_inside_and_restores_each_submodule_after_an_error():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5), torch.nn.Sequential(torch.nn.ReLU()))
    model.train()
    model[2].eval()
    before = [m.training for m in model.modules()]
    with pytest.raises(RuntimeError, match="inside"):
        with eval_mode(model) as inner:
            assert inner is model and not any(m.training for m in model.modules())
            raise RuntimeError("inside")
    assert [m.training for m in model.modules()] == before
    with pytest.raises(TypeError, match="torch.nn.Module"):
        with eval_mode("not a module"):
            pass
