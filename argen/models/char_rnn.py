"""Char-RNN: a recurrent autoregressive model of character sequences (Karpathy, 2015).

The model factorises p(x_0 .. x_{T-1}) = prod_t p(x_t | x_<t). Characters are ids 0..V-1 (V =
``vocab_size``). The first character is predicted from a begin-of-sequence input whose id ``V``
(``self.bos``) belongs to the model, not to the data, so ``log_prob`` covers every character of
a sequence, the first one included.

Carrying state. ``forward(tokens, state)`` returns a :class:`CharRNNState` holding the recurrent
hidden state *and* the last token of the window, which has not yet been fed to the RNN. Passing it
to the next call continues the same sequence exactly, so a long text can be scored window by
window (``log_prob_windowed``) with the same result as one pass over the whole text.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from argen.models.base import TEXT, Capabilities
from argen.models.text_base import DrawNext, TextModel

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

_CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
_EMBEDDINGS = ("onehot", "learned")
DEFAULT_EMBEDDING_DIM = 64


class CharRNNState(NamedTuple):
    """Everything needed to continue a sequence: the RNN hidden state after consuming all inputs so
    far (``None`` = zeros) and ``last`` [B], the latest token, not yet fed (BOS at the start)."""

    hidden: Hidden | None
    last: torch.Tensor

    def detach(self) -> CharRNNState:
        """Cut the autograd graph (truncated back-propagation through time)."""
        if self.hidden is None:
            return self
        if isinstance(self.hidden, tuple):
            return CharRNNState(tuple(h.detach() for h in self.hidden), self.last)
        return CharRNNState(self.hidden.detach(), self.last)


class CharRNN(TextModel):
    """Multi-layer LSTM/GRU/tanh-RNN over characters with a softmax over the vocabulary.

    Args:
        vocab_size: number of data characters V (ids 0..V-1); the model adds its own BOS input.
        embedding: ``"onehot"`` (the char-rnn default: the input is a one-hot vector of size V+1)
            or ``"learned"`` (an ``nn.Embedding`` of size ``embedding_dim``).
        embedding_dim: width of the learned embedding (default 64); must be ``None`` for one-hot.
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"`` (tanh).
        hidden_size, num_layers: size of the recurrent stack.
        dropout: dropout between recurrent layers and before the output layer.
    """

    capabilities = Capabilities(data=TEXT)

    def __init__(
        self,
        vocab_size: int,
        embedding: str = "onehot",
        embedding_dim: int | None = None,
        cell: str = "lstm",
        hidden_size: int = 512,
        num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(vocab_size)
        if embedding not in _EMBEDDINGS:
            raise ValueError(f"embedding must be one of {_EMBEDDINGS}, got {embedding!r}")
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {tuple(_CELLS)}, got {cell!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embedding_kind = embedding
        self.cell = cell
        if embedding == "onehot":
            if embedding_dim is not None:
                raise ValueError(
                    "embedding_dim is only used with embedding='learned'; one-hot inputs have "
                    f"size vocab_size + 1 = {self.vocab_size + 1}. Set embedding_dim to null."
                )
            self.embed = None
            input_size = self.vocab_size + 1
        else:
            input_size = int(embedding_dim or DEFAULT_EMBEDDING_DIM)
            self.embed = nn.Embedding(self.vocab_size + 1, input_size)
        self.rnn = _CELLS[cell](
            input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, self.vocab_size)

    # ----------------------------------------------------------------------------- inputs
    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> CharRNNState:
        """The state before any character: zero hidden state, BOS as the pending input."""
        device = self.head.weight.device if device is None else device
        return CharRNNState(
            None, torch.full((batch_size,), self.bos, dtype=torch.long, device=device)
        )

    def _embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        if self.embed is None:
            return F.one_hot(ids, self.vocab_size + 1).to(self.head.weight.dtype)
        return self.embed(ids)

    def _run(self, inputs: torch.Tensor, hidden: Hidden | None) -> tuple[torch.Tensor, Hidden]:
        """Embedded inputs [B, T, E] -> logits [B, T, V] and the new hidden state."""
        out, hidden = self.rnn(inputs, hidden)
        return self.head(self.drop(out)), hidden

    # ----------------------------------------------------------------------------- model
    def forward(
        self, tokens: torch.Tensor, state: CharRNNState | None = None
    ) -> tuple[torch.Tensor, CharRNNState]:
        """Logits [B, T, V]: ``logits[:, t]`` parameterise p(x_t | x_<t, state).

        The input at step t is x_{t-1}; at t = 0 it is ``state.last`` (BOS for a fresh sequence).
        The returned state continues the sequence after ``tokens``.
        """
        self.validate_tokens(tokens)
        batch = tokens.shape[0]
        if state is None:
            state = self.initial_state(batch, tokens.device)
        elif state.last.shape != (batch,):
            raise ValueError(
                f"state is for a batch of {tuple(state.last.shape)}, but tokens have batch {batch}"
            )
        inputs = torch.cat([state.last[:, None], tokens[:, :-1]], dim=1)
        logits, hidden = self._run(self._embed_ids(inputs), state.hidden)
        return logits, CharRNNState(hidden, tokens[:, -1])

    def forward_onehot(self, x_onehot: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, V] from float one-hot characters [B, T, V], starting from BOS.

        Same function as ``forward`` but differentiable in the input, for gradient-based checks.
        """
        if x_onehot.dim() != 3 or x_onehot.shape[2] != self.vocab_size:
            raise ValueError(
                f"forward_onehot expects [B, T, {self.vocab_size}], got {list(x_onehot.shape)}"
            )
        batch = x_onehot.shape[0]
        bos = x_onehot.new_zeros(batch, 1, self.vocab_size + 1)
        bos[:, :, self.bos] = 1.0
        shifted = torch.cat([bos, F.pad(x_onehot[:, :-1], (0, 1))], dim=1)
        embedded = shifted if self.embed is None else shifted @ self.embed.weight
        logits, _ = self._run(embedded.to(self.head.weight.dtype), None)
        return logits

    # ----------------------------------------------------------------------------- sampling
    def _generate(
        self,
        n: int,
        length: int,
        prime: torch.Tensor | None,
        device: torch.device,
        draw_next: DrawNext,
    ) -> torch.Tensor:
        """Feed ``prime`` in one pass, then one character per step through the RNN."""
        state = self.initial_state(n, device) if prime is None else self(prime, None)[1]
        hidden, last = state
        out = torch.empty(n, length, dtype=torch.long, device=device)
        for t in range(length):
            logits, hidden = self._run(self._embed_ids(last[:, None]), hidden)
            last = draw_next(logits[:, 0])
            out[:, t] = last
        return out
