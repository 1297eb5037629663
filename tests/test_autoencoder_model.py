"""Autoencoder baseline: it trains on real data, reconstructs, and refuses to act as a density."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from argen.models.autoencoder import Autoencoder, NotADensityError

MNIST_TEST = Path("/work/shared/data/binarized_mnist/binarized_mnist_test.amat.gz")


def load_binarized_mnist(num: int, stride: int) -> torch.Tensor:
    """Every ``stride``-th of the first ``num * stride`` test images (the file is sorted by class,
    so the stride mixes digits), as float {0, 1} [num, 1, 28, 28]."""
    if not MNIST_TEST.exists():
        pytest.skip(f"{MNIST_TEST} not present")
    with gzip.open(MNIST_TEST, "rb") as f:
        lines = itertools.islice(f, 0, num * stride, stride)
        rows = [np.frombuffer(line, dtype=np.uint8)[0 : 2 * 784 : 2] - ord("0") for line in lines]
    x = torch.from_numpy(np.stack(rows).astype(np.float32)).reshape(-1, 1, 28, 28)
    assert set(x.unique().tolist()) == {0.0, 1.0}
    return x


def train(
    model: Autoencoder, data: torch.Tensor, steps: int, batch: int = 100, lr: float = 1e-3
) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        x = data[(step * batch) % len(data) :][:batch]
        loss = model.reconstruction_loss(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture
def one_thread():
    """Small matmuls run several times faster on one thread when the CPUs are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_bce_loss_falls_on_binarized_mnist(one_thread):
    data = load_binarized_mnist(300, stride=10)
    torch.manual_seed(0)
    model = Autoencoder((1, 28, 28), hidden_size=100, code_size=32)  # small: keeps the test fast
    assert model.loss == "bce"
    with torch.no_grad():
        before = model.reconstruction_loss(data).mean().item()
    losses = train(model, data, steps=200, lr=3e-3)
    with torch.no_grad():
        after = model.reconstruction_loss(data).mean().item()
        recon = model(data)
    assert after < 0.5 * before, (before, after)
    assert sum(losses[-20:]) < sum(losses[20:40])  # still falling after the first epochs
    assert recon.shape == data.shape and recon.min() >= 0 and recon.max() <= 1


def test_l2_mode_on_continuous_input(one_thread):
    torch.manual_seed(1)
    shape = (1, 6, 6)
    model = Autoencoder(shape, num_levels=256, hidden_size=32, code_size=8).double()
    assert model.loss == "l2"
    # Smooth continuous "images" in [0, 255], not whole numbers.
    t = torch.linspace(0, 1, 36, dtype=torch.double)
    phase = torch.rand(200, 1, dtype=torch.double)
    data = (127.5 * (1 + torch.sin(6.0 * (t + phase)))).reshape(200, *shape)
    assert not torch.equal(data, data.round())
    loss = model.reconstruction_loss(data)
    expected = (model(data) - data / 255).pow(2).reshape(200, -1).sum(1)
    torch.testing.assert_close(loss, expected)
    losses = train(model, data, steps=300, batch=50)
    assert losses[-1] < 0.5 * losses[0]
    bce = Autoencoder(shape, num_levels=256, hidden_size=8, code_size=4, loss="bce").double()
    assert torch.isfinite(bce.reconstruction_loss(data)).all()


def test_encoder_is_linear_then_sigmoid():
    """Seed architecture h = sigmoid(W2 (W1 x + b1) + b2): logit(h) is affine in x."""
    torch.manual_seed(2)
    model = Autoencoder((1, 3, 3), hidden_size=7, code_size=4).double()
    x1, x2 = torch.rand(2, 5, 1, 3, 3, dtype=torch.double)
    mid = 0.3 * x1 + 0.7 * x2
    h1, h2, hm = (model.encode(v) for v in (x1, x2, mid))
    assert h1.shape == (5, 4) and ((h1 > 0) & (h1 < 1)).all()
    torch.testing.assert_close(torch.logit(hm), 0.3 * torch.logit(h1) + 0.7 * torch.logit(h2))


def test_has_no_likelihood_and_cannot_sample():
    model = Autoencoder((1, 4, 4), hidden_size=8, code_size=4)
    x = torch.zeros(2, 1, 4, 4)
    for call in (lambda: model.log_prob(x), lambda: model.sample(3)):
        with pytest.raises(NotADensityError) as info:
            call()
        message = str(info.value)
        for phrase in ("no distribution over x", "no likelihood", "cannot sample", "NLL"):
            assert phrase in message
        assert "nade" in message and "made" in message
    assert issubclass(NotADensityError, TypeError)


def test_rejects_bad_input():
    model = Autoencoder((1, 4, 4), hidden_size=8, code_size=4)
    for bad in (
        torch.zeros(2, 1, 4, 4, dtype=torch.long),
        torch.full((2, 1, 4, 4), 2.0),
        torch.zeros(2, 16),
    ):
        with pytest.raises(ValueError):
            model.reconstruction_loss(bad)
    with pytest.raises(ValueError):
        Autoencoder((1, 4, 4), loss="kl")
