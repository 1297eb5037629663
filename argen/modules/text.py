"""LightningModule that trains and evaluates a character model on character data
(``TextDataModule``): any ``argen.models.text_base.TextModel`` (Char-RNN, the Char Transformer),
whose base gives them one interface (``forward(tokens, state) -> (logits, state)``, ``log_prob``,
``log_prob_windowed``, ``sample``).

Metrics are those of every family (``argen.modules.base``), with a character as the example
and as the dimension, so "val/nll" is comparable across runs and is what checkpoints monitor:
"train/loss" (nats/char, per logged step), "{split}/nll" (nats/char) and "{split}/bits_per_dim"
(bits/char) for train, val and test, plus "val/unknown_chars" and "test/unknown_chars"
(characters of the split that were unseen in training). The sums are kept in torchmetrics
``SumMetric``s, so they reduce exactly across DDP ranks; evaluation scores each stream of the
split from BOS to its end, carrying the model's state (the RNN's hidden state, the
Transformer's context) across windows of ``eval_window`` characters (see ``argen.data.text`` for
the stream layout). The validation sample is drawn here and logged by
``argen.training.callbacks.text_samples``.

The character vocabulary is stored in every checkpoint (``checkpoint["vocab"]``) and restored
on load, so a checkpoint alone is enough to decode samples.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import SumMetric

from argen.data.text import CharVocab
from argen.models.text_base import TextModel
from argen.modules.base import ARModule

VOCAB_KEY = "vocab"
EVAL_SPLITS = ("val", "test")


class TextModule(ARModule):
    """Train a character model (``CharRNN``, ``CharTransformer``: any ``TextModel``) by maximum
    likelihood (mean NLL per character).

    Args:
        net: the model, any ``argen.models.text_base.TextModel``.
        optimizer: callable taking ``params`` (e.g. ``partial(torch.optim.Adam, lr=2e-3)``);
            Adam with lr 2e-3 when None.
        scheduler: optional callable taking ``optimizer`` (a plateau scheduler watches "val/nll").
        scheduler_interval: ``"epoch"`` or ``"step"``: when the scheduler steps (per optimizer
            step for a warm-up and cosine schedule, ``argen.modules.optim.warmup_cosine``).
        sample_length: characters generated after each validation (0 disables it).
        sample_prime: text the sample continues ("" starts from BOS).
        temperature, top_k: sampling settings for those samples.
        eval_window: characters scored per model call in evaluation (memory only; the result does
            not depend on it).
        vocab: the vocabulary (``CharVocab`` or its ``to_dict()``); taken from the DataModule at
            setup or from the checkpoint when not given.
    """

    def __init__(
        self,
        net: TextModel,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        sample_length: int = 200,
        sample_prime: str = "\n",
        temperature: float = 1.0,
        top_k: int | None = None,
        eval_window: int = 512,
        vocab: CharVocab | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            optimizer or partial(torch.optim.Adam, lr=2e-3),
            scheduler,
            scheduler_interval,
            num_dims=1,
        )
        # Only plain values go into the checkpoint's hyper-parameters (the optimizer factories
        # are functools.partial objects, which torch.load(weights_only=True) refuses).
        self.save_hyperparameters(logger=False, ignore=["net", "vocab", "optimizer", "scheduler"])
        self.net = net
        self.vocab = CharVocab.from_dict(vocab) if isinstance(vocab, dict) else vocab
        # characters of each evaluation split unseen in training (DDP-reducible sums)
        self.unknown = nn.ModuleDict({s: SumMetric(nan_strategy="disable") for s in EVAL_SPLITS})
        self.last_sample: str | None = None  # the latest validation sample ...
        self.last_sample_step: int | None = None  # ... and the global step it was drawn at

    # ------------------------------------------------------------------ vocabulary
    def _adopt_vocab(self, vocab: CharVocab, source: str) -> None:
        if self.vocab is not None and self.vocab != vocab:
            raise ValueError(
                f"the vocabulary from {source} ({vocab}) differs from the one this model was "
                f"trained with ({self.vocab}); character ids would be misread"
            )
        if len(vocab) != self.net.vocab_size:
            raise ValueError(
                f"the vocabulary from {source} has {len(vocab)} ids but the net was built with "
                f"vocab_size={self.net.vocab_size}; build the net with datamodule.net_overrides()"
            )
        self.vocab = vocab

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        vocab = getattr(datamodule, "vocab", None)
        if isinstance(vocab, CharVocab):
            self._adopt_vocab(vocab, "the DataModule")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.vocab is not None:
            checkpoint[VOCAB_KEY] = self.vocab.to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if VOCAB_KEY in checkpoint:
            self._adopt_vocab(CharVocab.from_dict(checkpoint[VOCAB_KEY]), "the checkpoint")

    # ------------------------------------------------------------------ steps
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Log-likelihood in nats of each sequence [B, T] (see ``TextModel.log_prob``)."""
        return self.net.log_prob(tokens)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        logits, _ = self.net(batch)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.reshape(-1))
        self._add_train(loss.detach() * batch.numel(), batch.numel())
        self._log_step_loss(loss)
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> None:
        tokens, mask = batch
        log_prob = self.net.log_prob_windowed(tokens, self.hparams.eval_window, mask)
        self._add(split, -log_prob.sum(), mask.sum())
        self.unknown[split].update(((tokens == CharVocab.unk_id) & mask).sum())

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def split_metrics(self, split: str, mean: torch.Tensor) -> dict[str, torch.Tensor]:
        """nll and bits_per_dim per character, and the evaluation splits' unknown characters."""
        metrics = super().split_metrics(split, mean)
        if split in self.unknown:
            metrics["unknown_chars"] = self.unknown[split].compute()  # summed over ranks
            self.unknown[split].reset()
        return metrics

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if not self.trainer.sanity_checking and self.trainer.is_global_zero:
            self._draw_sample()

    # ------------------------------------------------------------------ samples
    def generate_text(
        self,
        length: int,
        prime: str | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        num: int | None = None,
    ) -> str | list[str]:
        """``prime`` (default ``sample_prime``) followed by ``length`` sampled characters.

        Returns one string, or a list of ``num`` independent samples when ``num`` is given.
        ``seed`` uses a private generator; without it the global torch generator is used.
        """
        if self.vocab is None:
            raise RuntimeError("no vocabulary: fit with a TextDataModule or load a checkpoint")
        prime = self.hparams.sample_prime if prime is None else prime
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        prime_ids = self.vocab.encode(prime).to(self.device) if prime else None
        ids = self.net.sample(
            num or 1,
            length,
            prime=prime_ids,
            temperature=temperature,
            top_k=top_k,
            generator=generator,
            device=self.device,
            exclude=(self.vocab.unk_id,),  # the unknown symbol is no character to print
        )
        texts = [prime + self.vocab.decode(row) for row in ids]
        return texts if num is not None else texts[0]

    def _draw_sample(self) -> None:
        """Draw the validation sample into ``last_sample``; ``argen.training.callbacks.text_samples``
        logs it (the module itself never calls W&B)."""
        if self.vocab is None or self.hparams.sample_length <= 0:
            return
        # A dedicated generator: sampling does not disturb the training random stream.
        text = self.generate_text(
            self.hparams.sample_length,
            self.hparams.sample_prime,
            self.hparams.temperature,
            self.hparams.top_k,
            seed=self.global_step,
        )
        self.last_sample, self.last_sample_step = text, self.global_step
