"""Tests for lzn.samplers on velocity fields whose rectified flow is known in closed form."""

from __future__ import annotations

import pytest
import torch

from lzn.samplers import invert_rk45, reconstruction_error, sample_euler, sample_rk45


class GaussianRF:
    """Exact RF velocity from N(0, I) noise (t = 0) to N(m, diag(s²)) data (t = 1), per pixel.

    Marginal: x_t = t·m + σ(t)·ε with σ(t) = sqrt((1 − t)² + t²s²), so the flow map is
    x_t = t·m + σ(t)/σ(t0)·(x_{t0} − t0·m) and v(x, t) = m + (x − t·m)·(t·s² − (1 − t))/σ(t)².
    """

    def __init__(self, m: torch.Tensor, s: torch.Tensor) -> None:
        self.m, self.s = m, s
        self.calls = 0

    def sigma(self, t):
        return torch.sqrt((1 - t) ** 2 + t**2 * self.s**2)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        assert t.shape == (x.shape[0],)
        tb = t.reshape(-1, 1, 1, 1).to(x.dtype)
        return self.m + (x - tb * self.m) * (tb * self.s**2 - (1 - tb)) / self.sigma(tb) ** 2

    def flow(self, x: torch.Tensor, t_from: float, t_to: float) -> torch.Tensor:
        t_from, t_to = torch.tensor(t_from, dtype=x.dtype), torch.tensor(t_to, dtype=x.dtype)
        return t_to * self.m + self.sigma(t_to) / self.sigma(t_from) * (x - t_from * self.m)


@pytest.fixture
def field():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(1, 2, 3, 3, generator=g, dtype=torch.float64)
    s = 0.2 + torch.rand(1, 2, 3, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    return GaussianRF(m, s), noise


def test_rk45_matches_closed_form(field):
    model, noise = field
    exact = model.flow(noise, 1e-3, 1.0)
    x, nfe = sample_rk45(model, noise, rtol=1e-8, atol=1e-8)
    assert isinstance(nfe, int) and nfe == model.calls
    assert (x - exact).abs().max() < 1e-6
    x_default, nfe_default = sample_rk45(model, noise)  # paper tolerances rtol = atol = 1e-5
    assert (x_default - exact).abs().max() < 5e-5
    assert 0 < nfe_default < nfe
    assert x_default.dtype == noise.dtype and x_default.shape == noise.shape


def test_euler_converges_at_first_order(field):
    model, noise = field
    exact = model.flow(noise, 1e-3, 1.0)
    errors = [(sample_euler(model, noise, steps=n) - exact).abs().max().item() for n in (20, 40, 80)]
    for coarse, fine in zip(errors, errors[1:]):
        assert 1.8 < coarse / fine < 2.2
    assert errors[-1] < 0.1
    # t0 / t1 are honoured: integrating a partial interval matches the closed form too
    partial = sample_euler(model, noise, steps=4000, t0=0.2, t1=0.6)
    assert (partial - model.flow(noise, 0.2, 0.6)).abs().max() < 1e-3


def test_invert_then_resample_recovers_input(field):
    model, noise = field
    data = model.flow(noise, 1e-3, 1.0)
    back, _ = invert_rk45(model, data, rtol=1e-8, atol=1e-8)
    assert (back - noise).abs().max() < 1e-6
    err = reconstruction_error(model, data)
    assert err.shape == (4,)
    assert err.max() < 1e-4


class ConditionalField:
    """v(x, t; z, y) = z·(1 + y·k): straight lines, x(t1) = x(t0) + (t1 − t0)·v."""

    def __call__(self, x, t, z, y_onehot):
        scale = 1 + (y_onehot * torch.arange(1, y_onehot.shape[1] + 1, dtype=x.dtype)).sum(1)
        return (z * scale[:, None]).reshape(x.shape)


def test_conditioning_is_passed_through():
    model = ConditionalField()
    noise = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    z = torch.arange(8, dtype=torch.float64).reshape(2, 4)
    y = torch.eye(3, dtype=torch.float64)[[0, 2]]
    expected = (1.0 - 1e-3) * z * torch.tensor([[2.0], [4.0]], dtype=torch.float64)
    x, _ = sample_rk45(model, noise, z=z, y_onehot=y)
    torch.testing.assert_close(x.reshape(2, 4), expected)
    x = sample_euler(model, noise, steps=3, z=z, y_onehot=y)
    torch.testing.assert_close(x.reshape(2, 4), expected)
    assert reconstruction_error(model, x, z=z, y=y).max() < 1e-8
    # None-valued conditioning is dropped, so unconditional models need not accept it
    sample_euler(lambda x, t: torch.zeros_like(x), noise, steps=1, z=None, y_onehot=None)


def test_rk45_round_trip_with_a_latent_conditioned_unet():
    from lzn.models import UNet

    torch.manual_seed(0)
    model = UNet(1, 8, nf=8, ch_mult=(1,), attn_resolutions=(), latent_dim=2).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x, z = torch.rand(2, 1, 8, 8) * 2 - 1, torch.randn(2, 2)
    sample, nfe = sample_rk45(model, torch.randn(2, 1, 8, 8), z=z)
    assert sample.shape == (2, 1, 8, 8) and sample.dtype == torch.float32 and nfe > 0
    noise, _ = invert_rk45(model, x, z=z)
    assert (noise - x).abs().max() > 0.05  # the flow moves the data
    err = reconstruction_error(model, x, z=z)
    # float32 network at rtol = atol = 1e-5 (a random network's field varies fast in t: sinusoids of 999t)
    assert err.shape == (2,) and err.max() < 0.02
    with pytest.raises(ValueError, match="z is required"):
        reconstruction_error(model, x)
