"""The one base of the character models: both models take their checks, scoring and sampling
preamble from ``TextModel``, so they accept and refuse the same inputs in the same words."""

from __future__ import annotations

import re

import pytest
import torch

from argen.models.char_rnn import CharRNN
from argen.models.char_transformer import CharTransformer
from argen.models.text_base import TextModel

V = 7


def models() -> list[TextModel]:
    torch.manual_seed(0)
    return [
        CharRNN(V, hidden_size=8, num_layers=1),
        CharTransformer(V, context_size=6, dim=8, num_layers=1, num_heads=2),
    ]


def test_both_models_extend_the_base_without_their_own_copies():
    for model in models():
        assert isinstance(model, TextModel)
        for name in ("validate_tokens", "log_prob", "log_prob_windowed", "sample"):
            assert name not in type(model).__dict__, f"{type(model).__name__} overrides {name}"


BAD_TOKENS = [
    ([1, 2], TypeError, "expects a torch.Tensor of ids, got list"),
    (
        torch.zeros(2, 3),
        ValueError,
        "expects a LongTensor of character ids, got dtype torch.float32",
    ),
    (torch.zeros(3, dtype=torch.long), ValueError, "expects ids of shape [B, T] with T >= 1"),
    (torch.zeros(2, 0, dtype=torch.long), ValueError, "expects ids of shape [B, T] with T >= 1"),
    (
        torch.tensor([[0, V]]),
        ValueError,
        f"expects ids in [0, {V - 1}] (vocab_size={V}), got values in [0, {V}]",
    ),
    (
        torch.tensor([[-1, 2]]),
        ValueError,
        f"expects ids in [0, {V - 1}] (vocab_size={V}), got values in [-1, 2]",
    ),
]


@pytest.mark.parametrize(("tokens", "error", "message"), BAD_TOKENS)
def test_both_models_refuse_the_same_tokens_with_the_same_message(tokens, error, message):
    messages = []
    for model in models():
        for call in (model.log_prob, lambda t, m=model: m.log_prob_windowed(t, 2)):
            with pytest.raises(error) as caught:
                call(tokens)
            text = str(caught.value)
            assert text.startswith(f"{type(model).__name__} {message}"), text
            messages.append(text.removeprefix(type(model).__name__))
    assert len(set(messages)) == 1, messages


def test_an_empty_batch_is_checked_without_error():
    """The RNN's guard for an empty batch (min() of no ids) holds for both models now."""
    for model in models():
        model.validate_tokens(torch.zeros(0, 3, dtype=torch.long))


def test_both_models_refuse_the_same_sampling_arguments():
    for model in models():
        for kwargs, message in [
            ({"temperature": 0.0}, "temperature must be positive"),
            ({"top_k": V + 1}, f"top_k must be in [1, {V}]"),
            ({"exclude": range(V)}, "leaves no id"),
            ({"prime": torch.zeros(3, 2, dtype=torch.long)}, "prime must be [P] or [n, P]"),
            ({"prime": torch.tensor([V])}, f"expects ids in [0, {V - 1}]"),
        ]:
            with pytest.raises(ValueError, match=re.escape(message)):
                model.sample(2, 4, **kwargs)


def test_windowed_scoring_and_sampling_preamble_behave_the_same_for_both():
    tokens = torch.randint(0, V, (3, 17), generator=torch.Generator().manual_seed(1))
    for model in models():
        torch.testing.assert_close(model.log_prob_windowed(tokens, 5), model.log_prob(tokens))
        model.train()
        generator = torch.Generator().manual_seed(3)
        out = model.sample(4, 9, prime=tokens[0, :4], top_k=3, generator=generator, exclude=(0,))
        assert model.training, "sampling restores the training mode"
        assert out.shape == (4, 9) and out.dtype == torch.long
        assert bool((out != 0).all()), "an excluded id is never drawn"
        again = model.sample(
            4,
            9,
            prime=tokens[0, :4],
            top_k=3,
            generator=torch.Generator().manual_seed(3),
            exclude=(0,),
        )
        assert torch.equal(out, again), "same generator, same samples"
