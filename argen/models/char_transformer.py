"""A causal Transformer over characters (GPT-style; Radford et al. 2018/2019), a drop-in
replacement for Char-RNN in the text pipeline (``argen.modules.text``).

Characters are ids 0..V-1; the model's own begin-of-sequence id ``V`` (``self.bos``) always sits
at position 0 of its input, so ``log_prob`` covers every character, the first one included.

Finite context. The Transformer has ``context_size`` positions: BOS and at most
``context_size - 1`` earlier characters. For sequences longer than that, the context of
character t is fixed by a strided rule (a function of t alone, so the model is one well-defined
autoregressive distribution whatever the window it is evaluated in):

    inputs for x_t = [BOS, x_s(t), ..., x_{t-1}],   s(t) = 0 for t < L,
                                                   s(t) = S * ((t - L) // S + 1) otherwise,

with L = ``context_size`` and S = ``stride`` (1 <= S <= L). The first L characters see all of their
past; after that, characters come in groups of S sharing a context start, each seeing between
L - S and L - 1 earlier characters. S = 1 is a sliding window (one pass per character), S = L cuts
the text into independent blocks; the default S = L // 2 scores a long text with about two
Transformer positions per character. Training windows of at most L characters are one ordinary
causal pass from BOS.

Carrying state. ``forward(tokens, state)`` returns a :class:`CharTransformerState` holding the
characters the next one may still see and how many were consumed, so a long text scored window
by window (``log_prob_windowed``, as the text module does) gives the same result as one pass.

Sampling (``sampler="cached"``) keeps a key/value cache and feeds one character per step,
rebuilding the cache from the retained context when the context start moves (every S steps past
L); ``"naive"`` reruns the Transformer on the whole context for every character. Both apply the
same temperature/top-k and draw with the same multinomial, so for the same generator the samples
are the same.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from argen.models.attention import CausalTransformer
from argen.models.base import TEXT, Capabilities
from argen.models.cached_sampling import check_sampler
from argen.models.text_base import DrawNext, TextModel


class CharTransformerState(NamedTuple):
    """Everything needed to continue a sequence: ``tokens`` [B, k], the last k characters (those
    the next character's context can still reach), and ``position``, the characters consumed."""

    tokens: torch.Tensor
    position: int

    def detach(self) -> CharTransformerState:
        """Nothing to cut: the state holds character ids, not activations."""
        return self


class CharTransformer(TextModel):
    """Decoder-only Transformer over characters with a softmax over the vocabulary.

    Args:
        vocab_size: number of data characters V (ids 0..V-1); the model adds its own BOS input.
        context_size: positions of the Transformer (BOS + up to ``context_size - 1`` characters);
            train on windows of at most this length (the configs tie it to ``seq_len``).
        stride: characters predicted per pass past the first window (default
            ``context_size // 2``; see the module docstring).
        dim, num_layers, num_heads, mlp_ratio, dropout: the Transformer (pre-norm blocks).
        positions: ``"learned"`` or ``"sinusoidal"`` absolute positions.
        sampler: ``"cached"`` (key/value cache) or ``"naive"``; the same samples.
    """

    capabilities = Capabilities(data=TEXT)

    def __init__(
        self,
        vocab_size: int,
        context_size: int = 256,
        stride: int | None = None,
        dim: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        positions: str = "learned",
        sampler: str = "cached",
    ) -> None:
        super().__init__(vocab_size)
        if int(context_size) < 2:
            raise ValueError(f"context_size must be at least 2 (BOS + 1), got {context_size}")
        stride = int(context_size) // 2 if stride is None else int(stride)
        if not 1 <= stride <= int(context_size):
            raise ValueError(f"stride must be in [1, {context_size}], got {stride}")
        self.context_size = int(context_size)
        self.stride = stride
        self.sampler = check_sampler(sampler)
        self.transformer = CausalTransformer(
            self.vocab_size + 1,
            self.context_size,
            dim,
            num_layers,
            num_heads,
            mlp_ratio,
            dropout,
            positions,
        )
        self.head = nn.Linear(dim, self.vocab_size)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def compile(self, *args, **kwargs) -> None:
        """``torch.compile`` the Transformer core (``compile=true`` calls this), not ``forward``.

        ``forward`` cuts long inputs into context groups in Python, by character position; compiled
        as a whole it would be retraced for every new position of an evaluation window. The core
        maps embeddings to hidden states with no Python state, so one trace (dynamic in length)
        serves training and evaluation. The cached sampler calls the core's uncompiled
        ``forward``, whose KV cache changes length at every step.
        """
        self.transformer.compile(*args, **kwargs)

    # ----------------------------------------------------------------------------- context
    def context_start(self, t: int) -> int:
        """s(t): the first character that character ``t`` sees (module docstring)."""
        length, stride = self.context_size, self.stride
        return 0 if t < length else stride * ((t - length) // stride + 1)

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> CharTransformerState:
        """The state before any character: nothing seen yet."""
        device = self.head.weight.device if device is None else device
        return CharTransformerState(torch.empty(batch_size, 0, dtype=torch.long, device=device), 0)

    # ----------------------------------------------------------------------------- model
    def _hidden(self, embedded: torch.Tensor) -> torch.Tensor:
        """Character embeddings [B, n, dim] (BOS prepended here) -> hidden states [B, n+1, dim]."""
        bos = self.transformer.tokens.weight[self.bos].to(embedded.dtype)
        bos = bos.expand(embedded.shape[0], 1, -1)
        return self.transformer(torch.cat([bos, embedded], dim=1))

    def _strided_logits(self, embedded: torch.Tensor, base: int, first: int) -> torch.Tensor:
        """Logits [B, T, V] of characters ``first .. base + n - 1`` from embeddings [B, n, dim] of
        characters ``base .. base + n - 1``: one causal pass per group sharing a context start."""
        end = base + embedded.shape[1]
        chunks = []
        t = first
        while t < end:
            s = self.context_start(t)
            group_end = min(end, s + self.context_size)
            hidden = self._hidden(embedded[:, s - base : group_end - 1 - base])
            chunks.append(self.head(hidden[:, t - s : group_end - s]))
            t = group_end
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=1)

    def forward(
        self, tokens: torch.Tensor, state: CharTransformerState | None = None
    ) -> tuple[torch.Tensor, CharTransformerState]:
        """Logits [B, T, V]: ``logits[:, t]`` parameterise p(x_t | its context, state).

        The returned state continues the sequence after ``tokens``.
        """
        self.validate_tokens(tokens)
        batch = tokens.shape[0]
        if state is None:
            state = self.initial_state(batch, tokens.device)
        elif state.tokens.shape[0] != batch:
            raise ValueError(
                f"state is for a batch of {state.tokens.shape[0]}, but tokens have batch {batch}"
            )
        seen = torch.cat([state.tokens, tokens], dim=1)
        base = state.position - state.tokens.shape[1]
        logits = self._strided_logits(self.transformer.embed(seen), base, state.position)
        end = state.position + tokens.shape[1]
        keep = seen[:, self.context_start(end) - base :]
        return logits, CharTransformerState(keep, end)

    def forward_onehot(self, x_onehot: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, V] from float one-hot characters [B, T, V], starting from BOS.

        Same function as ``forward`` but differentiable in the input, for gradient-based checks.
        """
        if x_onehot.dim() != 3 or x_onehot.shape[2] != self.vocab_size:
            raise ValueError(
                f"forward_onehot expects [B, T, {self.vocab_size}], got {list(x_onehot.shape)}"
            )
        weight = self.transformer.tokens.weight[: self.vocab_size]
        return self._strided_logits(x_onehot.to(weight.dtype) @ weight, 0, 0)

    # ----------------------------------------------------------------------------- sampling
    def _generate(
        self,
        n: int,
        length: int,
        prime: torch.Tensor | None,
        device: torch.device,
        draw_next: DrawNext,
        sampler: str | None = None,
    ) -> torch.Tensor:
        """One character per step after ``prime``; ``sampler`` overrides ``self.sampler``
        (``"cached"``: a key/value cache, ``"naive"``: the whole context per character)."""
        cached = check_sampler(sampler or self.sampler) == "cached"
        seq = torch.empty(n, 0, dtype=torch.long, device=device) if prime is None else prime
        prefix = seq.shape[1]
        seq = torch.cat([seq, seq.new_empty(n, length)], dim=1)
        cache = None
        start = -1
        core = self.transformer.forward  # uncompiled even after compile(): see compile()
        for t in range(prefix, prefix + length):
            s = self.context_start(t)
            if not cached:
                hidden = self._hidden(self.transformer.embed(seq[:, s:t]))[:, -1]
            elif cache is None or s != start:  # (re)build the cache from the context
                if cache is None:
                    dtype = self.head.weight.dtype
                    cache = self.transformer.new_cache(n, None, device, dtype)
                cache.reset()
                start = s
                ids = torch.cat([seq.new_full((n, 1), self.bos), seq[:, s:t]], dim=1)
                hidden = core(self.transformer.embed(ids), cache)[:, -1]
            else:  # one new character through the cache
                hidden = core(self.transformer.embed(seq[:, t - 1 : t]), cache)[:, -1]
            seq[:, t] = draw_next(self.head(hidden))
        return seq[:, prefix:]

    def sample_cached(self, n: int, length: int, **kwargs) -> torch.Tensor:
        """Key/value-cached sampler (see ``sample``)."""
        return self.sample(n, length, sampler="cached", **kwargs)

    def sample_naive(self, n: int, length: int, **kwargs) -> torch.Tensor:
        """Reference sampler: the whole context through the network per character."""
        return self.sample(n, length, sampler="naive", **kwargs)
