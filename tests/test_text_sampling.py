"""Text sampling draws only real characters: the vocabulary's unknown symbol (id 0, characters the
training text lacks) gets probability 0 however large the network's logit for it, in both
character models and both Transformer samplers, in ``generate_text`` and in ``argen.sample``; a
prime with characters outside the vocabulary is named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from argen import sample
from argen.data.text import UNKNOWN_CHAR, CharVocab
from argen.models.char_rnn import CharRNN
from argen.models.char_sampling import check_exclude, draw
from argen.models.char_transformer import CharTransformer
from argen.modules.text import TextModule
from tests.test_sample_cli import MODELS, VOCAB, write_checkpoint

UNK = CharVocab.unk_id
BIG = 30.0  # the unknown symbol's logit: without the mask it is drawn ~always


def favour_unknown(net: CharRNN | CharTransformer) -> None:
    """Make the network put almost all its mass on the unknown symbol at every step."""
    with torch.no_grad():
        net.head.bias.zero_()
        net.head.bias[UNK] = BIG


def char_rnn(vocab_size: int = 5) -> CharRNN:
    torch.manual_seed(0)
    net = CharRNN(vocab_size, hidden_size=8, num_layers=1)
    favour_unknown(net)
    return net


def char_transformer(vocab_size: int = 5) -> CharTransformer:
    torch.manual_seed(0)
    net = CharTransformer(vocab_size, context_size=8, dim=16, num_layers=1, num_heads=2)
    favour_unknown(net)
    return net


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_draw_never_returns_an_excluded_id_and_keeps_top_k_among_the_rest():
    logits = torch.tensor([[BIG, 2.0, 1.0, 0.0]]).expand(500, -1)
    assert (draw(logits, generator=seeded(0)) == UNK).float().mean() > 0.99  # the test can fail
    drawn = draw(logits, generator=seeded(0), exclude=[UNK])
    assert not (drawn == UNK).any() and set(drawn.tolist()) == {1, 2, 3}
    # top-k chooses among the real characters: k=1 is the most likely real one
    assert (draw(logits, top_k=1, generator=seeded(0), exclude=[UNK]) == 1).all()
    assert set(draw(logits, top_k=2, generator=seeded(0), exclude=[UNK]).tolist()) == {1, 2}


def test_no_exclusion_draws_as_before():
    logits = torch.randn(64, 6, generator=seeded(1))
    for kwargs in ({}, {"temperature": 0.7, "top_k": 3}):
        assert torch.equal(
            draw(logits, generator=seeded(2), **kwargs),
            draw(logits, generator=seeded(2), exclude=[], **kwargs),
        )


def test_exclude_is_checked():
    assert check_exclude([0, 0], 5) == [0]
    with pytest.raises(ValueError, match="in \\[0, 4\\]"):
        check_exclude([5], 5)
    with pytest.raises(ValueError, match="leaves no id"):
        check_exclude([0], 1)


@pytest.mark.parametrize(
    ("build", "kwargs"),
    [
        (char_rnn, {}),
        (char_transformer, {"sampler": "cached"}),
        (char_transformer, {"sampler": "naive"}),
    ],
    ids=["char_rnn", "char_transformer_cached", "char_transformer_naive"],
)
def test_models_never_sample_the_unknown_symbol(build, kwargs):
    net = build()
    prime = torch.tensor([1, 2, UNK, 3])  # an unknown symbol in the prime conditions, no more
    plain = net.sample(16, 12, prime=prime, generator=seeded(0), **kwargs)
    assert (plain == UNK).float().mean() > 0.9  # without the mask the unknown symbol dominates
    masked = net.sample(16, 12, prime=prime, generator=seeded(0), exclude=[UNK], **kwargs)
    assert masked.shape == (16, 12) and not (masked == UNK).any()
    topk = net.sample(16, 12, top_k=2, generator=seeded(0), exclude=[UNK], **kwargs)
    assert not (topk == UNK).any()


def test_cached_and_naive_transformer_samplers_still_agree_with_exclusion():
    net = char_transformer()
    runs = [
        net.sample(4, 20, generator=seeded(3), exclude=[UNK], sampler=sampler)
        for sampler in ("cached", "naive")
    ]
    assert torch.equal(*runs)


def test_generate_text_prints_no_unknown_symbol():
    vocab = CharVocab.from_text("abc ")
    net = char_rnn(len(vocab))
    module = TextModule(net, vocab=vocab, sample_length=0)
    texts = module.generate_text(100, prime="ab", seed=0, num=4)
    assert all(t.startswith("ab") for t in texts)
    assert not any(UNKNOWN_CHAR in t for t in texts), texts


def unknown_heavy_checkpoint(tmp_path: Path) -> Path:
    """A char_rnn checkpoint (as train.py writes it) whose unknown-symbol logit is huge."""
    path = write_checkpoint(tmp_path / "char_rnn.ckpt", "char_rnn", MODELS["char_rnn"])
    checkpoint = torch.load(path, weights_only=True)
    bias = checkpoint["state_dict"]["net.head.bias"]
    bias.zero_()
    bias[UNK] = BIG
    torch.save(checkpoint, path)
    return path


def test_sample_cli_names_unknown_prime_characters_and_never_samples_unknown(tmp_path, capsys):
    ckpt = unknown_heavy_checkpoint(tmp_path)
    assert "é" not in VOCAB.stoi and "a" in VOCAB.stoi
    sample.main([str(ckpt), "--prime", "é€a", "--length", "60", "--num", "3"])
    captured = capsys.readouterr()
    texts = captured.out.rstrip("\n").split("\n\n")
    assert len(texts) == 3 and all(t.startswith("é€a") and len(t) == 63 for t in texts)
    assert not any(UNKNOWN_CHAR in t[3:] for t in texts), texts
    (note,) = captured.err.strip().splitlines()
    assert "'é', '€'" in note and "unknown symbol" in note and "'a'" not in note


def test_a_prime_of_known_characters_prints_no_note(tmp_path, capsys):
    ckpt = unknown_heavy_checkpoint(tmp_path)
    sample.main([str(ckpt), "--prime", "ab", "--length", "5"])
    assert capsys.readouterr().err == ""
