"""Per-character probabilities of a string under a character model (Char-RNN, Char Transformer).

``p("hello") = p(h) p(e | h) p(l | he) p(l | hel) p(o | hell)``: ``char_probabilities`` returns
every factor with the most likely alternatives at that position, from one pass of the model's
own ``forward`` (the same logits ``log_prob`` sums), so the total equals ``net.log_prob``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from argen.data.text import CharVocab
from argen.inspect.conditionals import InspectError


@dataclass(frozen=True)
class CharStep:
    """One factor p(x_t | x_<t): the character, its probability and the top alternatives."""

    position: int
    char: str
    log_prob: float  # nats
    top: list[tuple[str, float]]  # (character, probability), most likely first

    @property
    def prob(self) -> float:
        return math.exp(self.log_prob)


def check_text_model(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` if it scores characters (``forward(tokens) -> (logits, state)`` and ``bos``)."""
    if not (hasattr(net, "vocab_size") and hasattr(net, "bos") and hasattr(net, "log_prob")):
        raise InspectError(
            f"per-character probabilities are for text models (char_rnn, char_transformer), "
            f"not {type(net).__name__}"
        )
    return net


def char_probabilities(
    net: torch.nn.Module, vocab: CharVocab, text: str, top_k: int = 3
) -> tuple[list[CharStep], float]:
    """Every factor of ``log p(text)`` under ``net`` and the total log-probability in nats.

    Characters outside the vocabulary are scored as the unknown symbol, as in training.
    """
    check_text_model(net)
    if not text:
        raise InspectError("the text to score is empty; give at least one character")
    if len(vocab) != net.vocab_size:
        raise InspectError(
            f"the vocabulary has {len(vocab)} ids but the model {net.vocab_size}; use the "
            "vocabulary stored in the model's checkpoint"
        )
    device = next(net.parameters()).device
    tokens = vocab.encode(text)[None].to(device)
    with torch.no_grad():
        logits, _ = net(tokens)
        log_probs = logits[0].double().log_softmax(-1)  # [T, V]
    k = max(1, min(int(top_k), net.vocab_size))
    top_values, top_ids = log_probs.exp().topk(k, dim=-1)
    chosen = log_probs.gather(1, tokens[0, :, None]).squeeze(1)
    steps = [
        CharStep(
            position=t,
            char=vocab.itos[int(tokens[0, t])],
            log_prob=float(chosen[t]),
            top=[
                (vocab.itos[int(i)], float(p))
                for i, p in zip(top_ids[t], top_values[t], strict=True)
            ],
        )
        for t in range(tokens.shape[1])
    ]
    return steps, float(chosen.sum())


def first_line(text: str, min_chars: int = 12, max_chars: int = 48) -> str:
    """The first complete line of ``text`` with at least ``min_chars`` characters (a short
    prompt from the data), cut to ``max_chars``; the start of ``text`` if there is none."""
    for line in text.split("\n")[1:-1]:
        if len(line.strip()) >= min_chars:
            return line[:max_chars]
    return text[:max_chars]


def show_char(char: str) -> str:
    """A visible spelling of a character (newline, tab and space spelled out)."""
    return {"\n": "\\n", "\t": "\\t", " ": "␣"}.get(char, char)
