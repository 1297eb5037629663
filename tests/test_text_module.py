"""TextModule: exact split-level NLL, vocabulary in checkpoints, samples, and a short training."""

from __future__ import annotations

import math
import random
from functools import partial
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from argen.data.text import CharVocab, EvalStreams, TextDataModule
from argen.models.char_rnn import CharRNN
from argen.modules.text import TextModule
from tests.conftest import DATA_DIR

SHAKESPEARE = DATA_DIR / "tinyshakespeare" / "input.txt"
WORDS = ["the", "king", "shall", "speak", "and", "we", "hear", "him", "now", "good", "lord"]


def corpus(n_words: int = 400, seed: int = 0, extra: str = "") -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words)) + extra


def make_dm(tmp_path: Path, text: str, name: str = "corpus.txt", **kwargs) -> TextDataModule:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    kwargs = {"seq_len": 16, "batch_size": 8, "eval_batch_size": 3, **kwargs}
    dm = TextDataModule(str(tmp_path), path=str(path), **kwargs)
    dm.setup()
    return dm


def make_module(vocab_size: int, seed: int = 0, **kwargs) -> TextModule:
    torch.manual_seed(seed)
    net = CharRNN(vocab_size, hidden_size=16, num_layers=2)
    kwargs.setdefault("optimizer", partial(torch.optim.Adam, lr=1e-2))
    kwargs.setdefault("sample_length", 12)
    return TextModule(net, **kwargs)


def make_trainer(tmp_path: Path, **kwargs) -> Trainer:
    defaults = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "num_sanity_val_steps": 0,
        "default_root_dir": str(tmp_path),
    }
    return Trainer(**{**defaults, **kwargs})


@pytest.mark.parametrize("streams", [1, 3])
def test_split_nll_is_exact_sum_over_characters(tmp_path, streams):
    # "Q" and "#" never occur in training: they are scored as the unknown symbol and counted.
    dm = make_dm(tmp_path, corpus(extra=" Q lord # king"), eval_batch_size=streams)
    module = make_module(dm.vocab_size, eval_window=7)  # windows do not align with the streams
    trainer = make_trainer(tmp_path)
    val = trainer.validate(module, dm, verbose=False)[0]
    test = trainer.test(module, dm, verbose=False)[0]

    net = module.net.eval()
    for split, metrics in (("val", val), ("test", test)):
        tokens = dm.tokens[split]
        with torch.no_grad():
            # one pass per stream, each character's -log p summed; one stream = the whole split
            layout = EvalStreams(tokens, streams)
            nats = sum(
                -net.log_prob(row[mask][None]).item()
                for row, mask in map(layout.__getitem__, range(len(layout)))
            )
            if streams == 1:
                assert nats == pytest.approx(-net.log_prob(tokens[None]).item(), rel=1e-6)
        assert metrics[f"{split}/nll"] == pytest.approx(nats / len(tokens), rel=1e-5)
        bits = nats / len(tokens) / math.log(2)  # bits per character: a character is a dimension
        assert metrics[f"{split}/bits_per_dim"] == pytest.approx(bits, rel=1e-5)
        assert metrics[f"{split}/unknown_chars"] == dm.unknown_counts[split]
    assert dm.unknown_counts["test"] == 2


@pytest.mark.slow
def test_vocab_round_trip_through_a_lightning_checkpoint(tmp_path):
    dm = make_dm(tmp_path, corpus())
    module = make_module(dm.vocab_size)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/nll", save_top_k=1)
    trainer = make_trainer(
        tmp_path,
        max_steps=2,
        val_check_interval=2,
        enable_checkpointing=True,
        callbacks=[checkpoint],
    )
    trainer.fit(module, dm)
    path = checkpoint.best_model_path
    assert path and Path(path).is_file()

    raw = torch.load(path, weights_only=True)  # plain data only: safe loading works
    assert CharVocab.from_dict(raw["vocab"]) == dm.vocab
    loaded = TextModule.load_from_checkpoint(
        path, net=CharRNN(dm.vocab_size, hidden_size=16, num_layers=2)
    )
    assert loaded.vocab == dm.vocab and loaded.vocab is not dm.vocab
    for a, b in zip(
        loaded.net.state_dict().values(), module.net.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert loaded.generate_text(15, "the ", seed=3) == module.generate_text(15, "the ", seed=3)
    texts = loaded.generate_text(10, num=3, seed=0)  # default prime: sample_prime
    assert isinstance(texts, list) and len(texts) == 3
    assert all(t.startswith("\n") and len(t) == 11 for t in texts)


@pytest.mark.slow
def test_resuming_with_other_characters_is_refused(tmp_path):
    dm = make_dm(tmp_path, "abcdefgh" * 40)
    module = make_module(dm.vocab_size)
    trainer = make_trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(module, dm)
    trainer.save_checkpoint(tmp_path / "a.ckpt")

    other = make_dm(tmp_path, "bcdefghi" * 40, name="other.txt")  # same size, other characters
    assert other.vocab_size == dm.vocab_size and other.vocab != dm.vocab
    with pytest.raises(ValueError, match="differs"):
        make_trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(
            make_module(other.vocab_size), other, ckpt_path=tmp_path / "a.ckpt"
        )


@pytest.mark.slow
def test_net_must_match_the_vocabulary(tmp_path):
    dm = make_dm(tmp_path, corpus())
    with pytest.raises(ValueError, match="net_overrides"):
        make_trainer(tmp_path, max_steps=1).fit(make_module(dm.vocab_size + 1), dm)


@pytest.mark.slow
def test_validation_produces_a_sample(tmp_path):
    dm = make_dm(tmp_path, corpus())
    module = make_module(dm.vocab_size, sample_length=25, sample_prime="the ", top_k=3)
    make_trainer(tmp_path, max_steps=2, val_check_interval=2).fit(module, dm)
    text = module.last_sample
    assert isinstance(text, str) and text.startswith("the ") and len(text) == 4 + 25
    assert set(text) <= set(dm.vocab.itos)
    assert module.last_sample_step == module.global_step  # what callbacks.text_samples logs


def test_scheduler_is_configured(tmp_path):
    module = make_module(5, scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=1))
    config = module.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.Adam)
    assert config["optimizer"].param_groups[0]["lr"] == 1e-2
    assert config["lr_scheduler"]["monitor"] == "val/nll"


class _Losses(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


@pytest.mark.slow
@pytest.mark.skipif(not SHAKESPEARE.is_file(), reason="shared Tiny Shakespeare absent")
def test_short_training_on_tiny_shakespeare_lowers_the_loss(tmp_path):
    dm = TextDataModule(
        str(SHAKESPEARE.parent.parent),
        max_chars=40_000,
        seq_len=32,
        batch_size=32,
        eval_batch_size=8,
    )
    torch.manual_seed(0)
    module = TextModule(
        CharRNN(**dm.net_overrides(), hidden_size=64, num_layers=1),
        optimizer=partial(torch.optim.Adam, lr=1e-2),
        sample_length=0,
    )
    losses = _Losses()
    trainer = make_trainer(tmp_path, max_steps=60, check_val_every_n_epoch=1000, callbacks=[losses])
    before = trainer.validate(module, dm, verbose=False)[0]["val/nll"]
    trainer.fit(module, dm)
    after = trainer.validate(module, dm, verbose=False)[0]["val/nll"]
    test = trainer.test(module, dm, verbose=False)[0]
    assert before == pytest.approx(math.log(dm.vocab_size), abs=0.3)  # untrained: near uniform
    assert after < before - 0.8
    assert sum(losses.losses[-10:]) < sum(losses.losses[:10]) - 5.0
    assert test["test/nll"] < before - 0.8 and test["test/unknown_chars"] == 0
