"""Char Transformer: autoregressive property (with the strided finite context), exact
normalization, windowed scoring, KV-cached sampling identical to the naive sampler, and the text
pipeline (TextModule) driving it like Char-RNN."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from argen.models.char_transformer import CharTransformer
from argen.modules.text import TextModule
from tests.ar_checks import all_discrete, assert_autoregressive, assert_normalized
from tests.conftest import needs_data
from tests.test_pixelsnail import train_then_resume

CONFIGS = [
    {"context_size": 16, "positions": "learned"},  # every sequence fits the context
    {"context_size": 4, "stride": 2, "positions": "sinusoidal"},  # strided context
    {"context_size": 3, "stride": 1, "positions": "learned"},  # sliding window
    {"context_size": 3, "stride": 3, "positions": "learned"},  # independent blocks
]


def make(vocab_size: int = 4, seed: int = 0, std: float | None = None, **kwargs) -> CharTransformer:
    torch.manual_seed(seed)
    options = {"dim": 8, "num_layers": 2, "num_heads": 2, "mlp_ratio": 2, **kwargs}
    model = CharTransformer(vocab_size, **options).double().eval()
    if std is not None:
        for param in model.parameters():
            torch.nn.init.normal_(param, std=std)
    return model


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("config", CONFIGS)
def test_autoregressive_by_gradients(config):
    model = make(4, std=0.5, **config)
    ids = torch.randint(0, 4, (3, 9), generator=seeded(1))
    assert_autoregressive(model.forward_onehot, F.one_hot(ids, 4).double(), order=range(9))


@pytest.mark.parametrize("config", CONFIGS[1:])
def test_each_character_sees_exactly_its_documented_context(config):
    """x_t depends on x_s(t) .. x_{t-1} and on nothing before s(t)."""
    model = make(4, std=0.5, **config)
    x = F.one_hot(torch.randint(0, 4, (2, 11), generator=seeded(2)), 4).double()
    x.requires_grad_(True)
    logits = model.forward_onehot(x)
    for t in range(11):
        (grad,) = torch.autograd.grad(logits[:, t].sum(), x, retain_graph=True)
        influence = grad.abs().sum(dim=(0, 2))
        s = model.context_start(t)
        assert t - s <= model.context_size - 1
        assert torch.all(influence[:s] == 0) and torch.all(influence[t:] == 0)
        assert torch.all(influence[s:t] > 0), f"character {t} misses part of [{s}, {t})"


def test_autoregressive_check_catches_a_leak():
    model = make(4, std=0.5)
    x = F.one_hot(torch.randint(0, 4, (2, 5)), 4).double()

    def leaky(z: torch.Tensor) -> torch.Tensor:  # conditional t sees x_t
        return model.forward_onehot(torch.roll(z, -1, dims=1))

    with pytest.raises((AssertionError, IndexError)):
        assert_autoregressive(leaky, x, order=range(5))


@pytest.mark.parametrize("config", CONFIGS)
def test_forward_onehot_matches_forward(config):
    model = make(4, **config)
    ids = torch.randint(0, 4, (2, 10))
    logits, _ = model(ids)
    torch.testing.assert_close(model.forward_onehot(F.one_hot(ids, 4).double()), logits)


@pytest.mark.parametrize("config", CONFIGS)
def test_normalized_over_all_strings(config):
    model = make(3, std=0.5, **config)
    every = all_discrete(5, 3)  # all 243 strings of length 5 over 3 characters
    assert_normalized(model.log_prob, every, atol=1e-10)
    assert_normalized(lambda t: model.log_prob_windowed(t, window=2), every, atol=1e-10)


def test_continuation_after_state_is_normalized():
    model = make(3, std=0.5, context_size=3, stride=2)
    prefix = torch.tensor([[2, 0, 1, 1]])
    every = all_discrete(3, 3)

    def continued(tokens: torch.Tensor) -> torch.Tensor:
        _, state = model(prefix.expand(tokens.shape[0], -1).contiguous())
        logits, _ = model(tokens, state)
        return logits.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1).sum(1)

    assert_normalized(continued, every, atol=1e-10)


@pytest.mark.parametrize("window", [1, 3, 4, 7, 50])
@pytest.mark.parametrize("config", CONFIGS[:2])
def test_windowed_log_prob_equals_one_pass(window, config):
    model = make(5, **config)
    tokens = torch.randint(0, 5, (3, 23))
    torch.testing.assert_close(model.log_prob_windowed(tokens, window), model.log_prob(tokens))


def test_windowed_log_prob_ignores_padding():
    model = make(5, context_size=4, stride=3)
    lengths = [23, 17, 9]
    rows = [torch.randint(0, 5, (n,)) for n in lengths]
    padded = torch.randint(0, 5, (3, 23))  # arbitrary padding after each row
    mask = torch.zeros(3, 23, dtype=torch.bool)
    for i, row in enumerate(rows):
        padded[i, : len(row)] = row
        mask[i, : len(row)] = True
    expected = torch.stack([model.log_prob(row[None])[0] for row in rows])
    torch.testing.assert_close(model.log_prob_windowed(padded, 5, mask), expected)


def test_state_carries_the_sequence_across_calls():
    model = make(4, context_size=5, stride=2)
    tokens = torch.randint(0, 4, (2, 11))
    full, _ = model(tokens)
    first, state = model(tokens[:, :6])
    second, _ = model(tokens[:, 6:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), full)
    assert state.position == 6
    assert torch.equal(state.tokens, tokens[:, model.context_start(6) : 6])
    fresh, _ = model(tokens[:, 6:])  # without the state the context is lost
    assert not torch.allclose(fresh, second)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("prime", [None, [1, 2, 3, 0, 1, 2, 3]])
def test_cached_sampling_equals_naive(config, prime):
    model = make(4, std=0.5, **config)
    prime = None if prime is None else torch.tensor(prime)
    for temperature, top_k in ((1.0, None), (0.7, 2), (1.5, 3)):
        kwargs = {"prime": prime, "temperature": temperature, "top_k": top_k}
        cached = model.sample_cached(5, 12, generator=seeded(1), **kwargs)
        naive = model.sample_naive(5, 12, generator=seeded(1), **kwargs)
        assert torch.equal(cached, naive)
        assert cached.shape == (5, 12) and cached.dtype == torch.long
        assert 0 <= cached.min() and cached.max() < 4


def test_sample_frequencies_match_log_prob():
    model = make(2, std=1.0, context_size=2, stride=1)  # strings of 4 pass the context
    every = all_discrete(4, 2)
    exact = model.log_prob(every).exp().detach()
    uniform = torch.full_like(exact, 1.0 / exact.numel())
    assert 0.5 * (exact - uniform).abs().sum() > 0.2, "the test distribution should be peaked"
    num = 20000
    draws = model.sample(num, 4, generator=seeded(3))
    codes = (draws * 2 ** torch.arange(3, -1, -1)).sum(1)
    empirical = torch.bincount(codes, minlength=16).double() / num
    assert 0.5 * (empirical - exact).abs().sum() < 0.05


def test_samples_continue_the_prime_from_its_state():
    """The first sampled character follows p(. | prime), the distribution forward() gives."""
    model = make(3, std=1.0, context_size=4, stride=2)
    prime = torch.tensor([2, 0, 1, 1, 2])
    logits, _ = model(prime[None])
    _, state = model(prime[None])
    next_logits, _ = model(torch.zeros(1, 1, dtype=torch.long), state)
    expected = next_logits[0, 0].softmax(-1)
    draws = model.sample(20000, 1, prime=prime, generator=seeded(4))[:, 0]
    empirical = torch.bincount(draws, minlength=3).double() / 20000
    assert 0.5 * (empirical - expected).abs().sum() < 0.03
    assert logits.shape == (1, 5, 3)


@pytest.mark.parametrize("k", [1, 2])
def test_top_k_restricts_each_step_to_the_k_most_likely(k):
    model = make(5, std=1.0, context_size=3)
    samples = model.sample(40, 6, top_k=k, generator=seeded(0))
    logits, _ = model(samples)
    allowed = logits.topk(k, dim=-1).indices
    assert (allowed == samples[..., None]).any(-1).all()


def test_rejects_bad_input_and_settings():
    model = make(4)
    with pytest.raises(ValueError, match="LongTensor"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="ids in"):
        model(torch.tensor([[0, 4]]))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(2, 0, dtype=torch.long))
    for kwargs in ({"context_size": 1}, {"context_size": 4, "stride": 5}, {"sampler": "fast"}):
        with pytest.raises(ValueError):
            CharTransformer(4, **kwargs)
    for kwargs in ({"temperature": 0.0}, {"top_k": 5}, {"prime": torch.tensor([[0, 1]] * 3)}):
        with pytest.raises(ValueError):
            model.sample(2, 3, **kwargs)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_text_module_trains_scores_and_samples_the_transformer():
    """TextModule drives the Transformer as it drives Char-RNN: a training step, exact
    windowed evaluation (independent of eval_window), and generate_text with a prime."""
    from argen.data.text import CharVocab

    vocab = CharVocab.from_text("abc \n")
    torch.manual_seed(0)
    net = CharTransformer(len(vocab), context_size=8, dim=8, num_layers=1, num_heads=2)
    module = TextModule(net, vocab=vocab, eval_window=5)
    batch = vocab.encode("abc abc\nab ca bc\n")[None, :8].repeat(2, 1)
    loss = module.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and net.head.weight.grad is not None
    stream = vocab.encode("abc cab bca\nabc abc cab\n")[None]
    mask = torch.ones_like(stream, dtype=torch.bool)
    module._eval_step((stream, mask), "val")
    nll = module.split_means["val_"].compute()
    torch.testing.assert_close(nll, -net.log_prob(stream)[0] / stream.shape[1])
    text = module.generate_text(30, prime="abc", temperature=0.8, top_k=3, seed=1)
    assert text.startswith("abc") and len(text) == 33
    assert text == module.generate_text(30, prime="abc", temperature=0.8, top_k=3, seed=1)


@pytest.mark.slow
@needs_data("tinyshakespeare")
def test_trains_with_bf16_compile_and_resumes_through_train_py(tmp_path, monkeypatch):
    first, second, checkpoint = train_then_resume(
        tmp_path,
        monkeypatch,
        "model=char_transformer",
        "data=tinyshakespeare",
        "data.datamodule.max_chars=6000",
        "data.datamodule.seq_len=32",
        "data.datamodule.batch_size=8",
        "data.datamodule.eval_batch_size=4",
        "model.module.net.dim=16",
        "model.module.net.num_layers=1",
        "model.module.net.num_heads=2",
        "model.module.sample_length=20",
        "model.module.eval_window=48",
    )
    assert first["model"] == second["model"] == "char_transformer"
    assert second["test_nll"] != first["test_nll"]
    assert "vocab" in checkpoint  # a checkpoint alone decodes samples (argen.sample --prime)
    assert checkpoint["argen_config"]["model"]["module"]["net"]["context_size"] == 32
