"""The one base of the character models (Char-RNN, the Char Transformer).

A character model is an ``nn.Module`` over ids 0..V-1 (V = ``vocab_size``) with its own
begin-of-sequence input id ``V`` (``self.bos``), an output layer ``self.head`` (``nn.Linear`` to V
logits) and a carried state, so that

* ``forward(tokens, state=None) -> (logits [B, T, V], state)`` continues a sequence exactly;
* ``initial_state(batch, device)`` is the state before any character.

On top of those two, this base holds everything the models share and must not drift apart: the
token checks (``validate_tokens``), exact scoring (``log_prob``) and windowed scoring with the state
carried across windows (``log_prob_windowed``), and the sampling preamble (argument checks,
priming, dropout off, then temperature, top-k and excluded ids through ``char_sampling.draw``).
A subclass writes only its generation loop, ``_generate``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from argen.models.char_sampling import check_exclude, draw

DrawNext = Callable[[torch.Tensor], torch.Tensor]


class TextModel(nn.Module):
    """Base class of the character models: token checks, scoring and the sampling preamble.

    Args:
        vocab_size: number of data characters V (ids 0..V-1); the model adds its own BOS input.
    """

    head: nn.Linear

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        if int(vocab_size) < 1:
            raise ValueError(f"vocab_size must be at least 1, got {vocab_size}")
        self.vocab_size = int(vocab_size)
        self.bos = self.vocab_size  # input-only id: "start of sequence"

    # ----------------------------------------------------------------------------- interface
    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Any:
        """The state before any character."""
        raise NotImplementedError  # pragma: no cover - interface

    def forward(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits [B, T, V] of every character of ``tokens`` and the state after them."""
        raise NotImplementedError  # pragma: no cover - interface

    def _generate(
        self,
        n: int,
        length: int,
        prime: torch.Tensor | None,
        device: torch.device,
        draw_next: DrawNext,
        **options: Any,
    ) -> torch.Tensor:
        """The model's generation loop: ``length`` ids [n, length] after ``prime`` ([n, P]
        checked ids, or ``None`` to start at BOS), each drawn by ``draw_next(logits [n, V])``."""
        raise NotImplementedError  # pragma: no cover - interface

    # ----------------------------------------------------------------------------- inputs
    def validate_tokens(self, tokens: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``tokens`` is an integer tensor [B, T>0] of ids 0..V-1."""
        who = type(self).__name__
        if not isinstance(tokens, torch.Tensor):
            raise TypeError(f"{who} expects a torch.Tensor of ids, got {type(tokens).__name__}")
        if tokens.dtype != torch.long:
            raise ValueError(
                f"{who} expects a LongTensor of character ids, got dtype {tokens.dtype}; "
                "encode text with CharVocab.encode or convert with .long()"
            )
        if tokens.dim() != 2 or tokens.shape[1] == 0:
            raise ValueError(
                f"{who} expects ids of shape [B, T] with T >= 1, got {list(tokens.shape)}"
            )
        if tokens.numel() and bool(((tokens < 0) | (tokens >= self.vocab_size)).any()):
            raise ValueError(
                f"{who} expects ids in [0, {self.vocab_size - 1}] (vocab_size={self.vocab_size}), "
                f"got values in [{tokens.min().item()}, {tokens.max().item()}]"
            )

    # ----------------------------------------------------------------------------- scoring
    @staticmethod
    def _token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """log p(tokens[b, t] | ...) for each position, [B, T]."""
        return logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)

    def log_prob(self, tokens: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood in nats of each sequence [B, T] (every character counted), [B]."""
        logits, _ = self(tokens)
        return self._token_log_probs(logits, tokens).sum(dim=1)

    def log_prob_windowed(
        self, tokens: torch.Tensor, window: int, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``log_prob`` of long sequences [B, L], computed ``window`` characters per call.

        The state is carried across windows, so the result equals ``log_prob(tokens)`` while the
        activations kept at once are bounded by the window. ``mask`` [B, L] (bool) selects which
        positions are summed; masked-out positions must come after the real ones in each row
        (padding), so they never condition a counted character.
        """
        self.validate_tokens(tokens)
        if window < 1:
            raise ValueError(f"window must be positive, got {window}")
        if mask is not None and mask.shape != tokens.shape:
            raise ValueError(f"mask shape {list(mask.shape)} != tokens shape {list(tokens.shape)}")
        total = tokens.new_zeros(tokens.shape[0], dtype=self.head.weight.dtype)
        state = None
        for start in range(0, tokens.shape[1], window):
            chunk = tokens[:, start : start + window]
            logits, state = self(chunk, state)
            lp = self._token_log_probs(logits, chunk)
            if mask is not None:
                lp = lp * mask[:, start : start + window].to(lp.dtype)
            total = total + lp.sum(dim=1)
        return total

    # ----------------------------------------------------------------------------- sampling
    def _prime_ids(
        self, prime: torch.Tensor | None, n: int, device: torch.device
    ) -> torch.Tensor | None:
        """``prime`` ([P] shared by all, or [n, P]) as checked ids [n, P] on ``device``; ``None``
        when there is no prime (or an empty one)."""
        if prime is None or prime.numel() == 0:
            return None
        prime = prime.to(device)
        if prime.dim() == 1:
            prime = prime.unsqueeze(0).expand(n, -1)
        if prime.dim() != 2 or prime.shape[0] != n:
            raise ValueError(f"prime must be [P] or [n, P], got {list(prime.shape)}")
        self.validate_tokens(prime)
        return prime.contiguous()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        length: int,
        prime: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        exclude: Sequence[int] = (),
        **options: Any,
    ) -> torch.Tensor:
        """Sample ``n`` continuations of ``length`` characters, LongTensor [n, length].

        ``prime`` ([P] shared by all, or [n, P]) conditions the samples and is not repeated in the
        output; without it sampling starts at BOS. ``temperature`` divides the logits; ``top_k``
        keeps only the k most likely characters at each step; ids in ``exclude`` (the data's
        unknown symbol) are never drawn. Dropout is off while sampling. ``options`` go to the
        model's loop (the Char Transformer's ``sampler``).
        """
        if n < 1 or length < 0:
            raise ValueError(f"need n >= 1 and length >= 0, got n={n}, length={length}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if top_k is not None and not 1 <= top_k <= self.vocab_size:
            raise ValueError(f"top_k must be in [1, {self.vocab_size}], got {top_k}")
        exclude = check_exclude(exclude, self.vocab_size)
        device = self.head.weight.device if device is None else torch.device(device)
        prime = self._prime_ids(prime, n, device)

        def draw_next(logits: torch.Tensor) -> torch.Tensor:
            return draw(logits, temperature, top_k, generator, exclude)

        was_training = self.training
        self.eval()
        try:
            return self._generate(n, length, prime, device, draw_next, **options)
        finally:
            self.train(was_training)
