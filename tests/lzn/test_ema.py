"""Tests for lzn.ema: warm-up decay schedule, buffers, copy_to and state_dict round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lzn.ema import EMA


class Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(0))


def test_decay_schedule_matches_hand_computed_sequence():
    module = Scalar()
    ema = EMA(module, decay=0.5)
    # min(0.5, (1+n)/(10+n)) for n = 1..10: the warm-up term reaches 0.5 at n = 8
    expected_decays = [2 / 11, 3 / 12, 4 / 13, 5 / 14, 6 / 15, 7 / 16, 8 / 17, 0.5, 0.5, 0.5]
    shadow = 0.0
    for n, d in enumerate(expected_decays, start=1):
        with torch.no_grad():
            module.w.fill_(float(n))
        used = ema.update(module)
        shadow = d * shadow + (1 - d) * n
        assert used == pytest.approx(d, abs=1e-15)
        assert ema.num_updates == n
        assert ema.shadow["w"].item() == pytest.approx(shadow, abs=1e-12)


def test_first_updates_by_hand():
    module = Scalar()
    ema = EMA(module, decay=0.9999)
    values = []
    for w in (1.0, 2.0):
        with torch.no_grad():
            module.w.fill_(w)
        ema.update(module)
        values.append(ema.shadow["w"].item())
    # n=1: d=2/11 -> 9/11 * 1 = 0.818181...; n=2: d=1/4 -> 0.25 * 9/11 + 0.75 * 2 = 1.704545...
    assert values == pytest.approx([0.8181818181818, 1.7045454545454], abs=1e-12)


def test_constant_decay_without_num_updates():
    module = Scalar()
    ema = EMA(module, decay=0.9, use_num_updates=False)
    with torch.no_grad():
        module.w.fill_(1.0)
    for _ in range(3):
        assert ema.update(module) == 0.9
    assert ema.shadow["w"].item() == pytest.approx(1 - 0.9**3, abs=1e-12)


def test_buffers_are_copied_and_copy_to_round_trip(tmp_path):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = EMA(module, decay=0.99)
    initial = {k: v.clone() for k, v in module.state_dict().items()}
    for _ in range(5):
        with torch.no_grad():
            for p in module.parameters():
                p.add_(torch.randn_like(p))
        module.train()(torch.randn(8, 3))  # changes BatchNorm running statistics
        ema.update(module)
    assert torch.equal(ema.buffers["1.running_mean"], module[1].running_mean)
    assert not torch.allclose(ema.shadow["0.weight"], module[0].weight)

    path = tmp_path / "ema.pt"
    torch.save(ema.state_dict(), path)
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    fresh.load_state_dict(initial)
    restored = EMA(fresh, decay=0.5, use_num_updates=False)
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert restored.num_updates == 5 and restored.decay == 0.99 and restored.use_num_updates
    restored.copy_to(fresh)
    for name, p in fresh.named_parameters():
        assert torch.equal(p, ema.shadow[name])
    assert torch.equal(fresh[1].running_mean, module[1].running_mean)
    # the EMA keeps working after loading: one more identical update on both
    assert ema.update(module) == restored.update(module)
    torch.testing.assert_close(ema.shadow["0.weight"], restored.shadow["0.weight"])


def test_load_state_dict_rejects_other_module():
    ema = EMA(nn.Linear(3, 4), decay=0.9)
    other = EMA(nn.Linear(3, 5), decay=0.9)
    with pytest.raises(ValueError, match="shape"):
        ema.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="names differ"):
        ema.load_state_dict(EMA(nn.Conv2d(1, 1, 1, bias=False), decay=0.9).state_dict())
