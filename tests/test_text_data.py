"""Text data: vocabulary, contiguous splits, batches, unknown characters, download and checksum."""

from __future__ import annotations

import hashlib
import io
import json
import random
import string
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from argen.data.download import DataError, InvalidDataError
from argen.data.text import (
    TINY_SHAKESPEARE_SHA256,
    TINY_SHAKESPEARE_URL,
    CharVocab,
    ChecksumError,
    DataMissingError,
    EvalStreams,
    TextDataModule,
    TextFileDataModule,
    ensure_tiny_shakespeare,
)
from tests.conftest import DATA_DIR, ROOT

SHARED = DATA_DIR
SHARED_FILE = SHARED / "tinyshakespeare" / "input.txt"
needs_shared = pytest.mark.skipif(
    not SHARED_FILE.is_file(), reason="shared Tiny Shakespeare absent"
)


def write_text(tmp_path: Path, text: str, name: str = "corpus.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def no_network(*args, **kwargs):
    raise urllib.error.URLError("network is unreachable")


# ------------------------------------------------------------------------------ vocabulary
def test_vocab_round_trip_and_unknown():
    vocab = CharVocab.from_text("hello world\n")
    assert vocab.chars == tuple(sorted(set("hello world\n")))
    assert len(vocab) == len(vocab.chars) + 1  # plus the unknown symbol
    ids = vocab.encode("low hello")
    assert ids.dtype == torch.long and vocab.decode(ids) == "low hello"
    assert (ids != CharVocab.unk_id).all()
    ids = vocab.encode("hallo!")
    assert ids.tolist()[1] == CharVocab.unk_id and ids.tolist()[5] == CharVocab.unk_id
    assert vocab.count_unknown("hallo!") == 2
    restored = CharVocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored == vocab and restored.encode("hello").tolist() == vocab.encode("hello").tolist()
    assert CharVocab.from_text("abc") != CharVocab.from_text("abd")


# ------------------------------------------------------------------------------ splits
def test_split_is_contiguous_without_overlap(tmp_path):
    text = "".join(chr(ord("a") + (i * 7) % 26) for i in range(1000))
    dm = TextDataModule(
        str(tmp_path), path=str(write_text(tmp_path, text)), split=(0.8, 0.15, 0.05)
    )
    dm.setup()
    sizes = [len(dm.tokens[s]) for s in ("train", "val", "test")]
    assert sizes == [800, 150, 50] == [dm.num_chars[s] for s in ("train", "val", "test")]
    whole = torch.cat([dm.tokens[s] for s in ("train", "val", "test")])
    assert torch.equal(whole, dm.vocab.encode(text))  # train, val, test in order, nothing repeated
    assert dm.vocab.decode(dm.tokens["val"]) == text[800:950]


def test_max_chars_uses_a_prefix(tmp_path):
    text = "abcdefghij" * 50
    dm = TextDataModule(str(tmp_path), path=str(write_text(tmp_path, text)), max_chars=200)
    dm.setup()
    assert sum(dm.num_chars.values()) == 200
    assert dm.vocab.decode(torch.cat(list(dm.tokens.values()))) == text[:200]


@pytest.mark.parametrize("split", [(0.9, 0.1), (0.5, 0.3, 0.3), (1.0, 0.0, 0.0)])
def test_bad_split_is_rejected(tmp_path, split):
    dm = TextDataModule(str(tmp_path), path=str(write_text(tmp_path, "abc" * 20)), split=split)
    with pytest.raises(ValueError, match="split"):
        dm.setup()


def test_invalid_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"abc\xff\xfedef")
    with pytest.raises(ValueError, match="UTF-8") as info:
        TextDataModule(str(tmp_path), path=str(path)).setup()
    assert isinstance(info.value, DataError) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------ data=text
def test_data_text_requires_a_path(tmp_path):
    for path in (None, ""):
        with pytest.raises(ValueError) as info:
            TextFileDataModule(str(tmp_path), path=path)
        message = str(info.value)
        assert isinstance(info.value, DataError) and "\n" not in message
        assert "data.datamodule.path=/path/to/file.txt" in message
        assert "data=tinyshakespeare" in message


def test_data_text_config_without_a_path_fails_at_instantiation(tmp_path):
    """Composed as train.py does, ``data=text`` alone must not fall back to Tiny Shakespeare."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train", overrides=["model=char_rnn", "data=text", f"paths.data_dir={tmp_path}"]
        )
        with pytest.raises(InstantiationException) as info:
            instantiate(cfg.data.datamodule)
        assert isinstance(info.value.__cause__, InvalidDataError)
        assert "data.datamodule.path=" in str(info.value.__cause__)
        corpus = write_text(tmp_path, "to be or not to be\n" * 20)
        cfg = compose(
            "train",
            overrides=["model=char_rnn", "data=text", f"data.datamodule.path={corpus}"],
        )
        dm = instantiate(cfg.data.datamodule)
    dm.setup()
    assert isinstance(dm, TextDataModule) and dm.name == "corpus"
    assert dm.vocab.decode(torch.cat(list(dm.tokens.values()))) == "to be or not to be\n" * 20


def test_data_text_with_a_missing_file_names_it(tmp_path):
    with pytest.raises(DataMissingError) as info:
        TextFileDataModule(str(tmp_path), path=str(tmp_path / "nothere.txt"))
    message = str(info.value)
    assert str(tmp_path / "nothere.txt") in message and "data.datamodule.path=" in message
    assert "\n" not in message


# ------------------------------------------------------------------------------ unknown chars
def test_unseen_characters_map_to_unknown_and_are_counted(tmp_path):
    text = "ab" * 40 + "abZab!abab" + "a!bZZababa"  # val and test hold Z and !, unseen in train
    dm = TextDataModule(str(tmp_path), path=str(write_text(tmp_path, text)), split=(0.8, 0.1, 0.1))
    with pytest.warns(UserWarning, match="unknown symbol"):
        dm.setup()
    assert dm.vocab.chars == ("a", "b")
    assert dm.unknown_counts == {"train": 0, "val": 2, "test": 3}
    assert dm.unknown_chars["test"] == {"Z": 2, "!": 1}
    assert dm.tokens["val"].tolist() == dm.vocab.encode("abZab!abab").tolist()
    assert (dm.tokens["val"] == CharVocab.unk_id).sum() == 2


# ------------------------------------------------------------------------------ batches
def test_training_batches_are_windows_of_the_training_split(tmp_path):
    text = "".join(random.Random(0).choices(string.ascii_lowercase, k=2000))  # windows all differ
    dm = TextDataModule(
        str(tmp_path), path=str(write_text(tmp_path, text)), seq_len=30, batch_size=8
    )
    dm.setup()
    train = dm.tokens["train"]
    windows = torch.cat(list(dm.train_dataloader()))
    assert windows.dtype == torch.long and windows.shape == (len(train) // 30, 30)
    starts = []
    for w in windows:  # each window is a contiguous slice at a multiple of seq_len
        matches = [s for s in range(0, len(train) - 29, 30) if torch.equal(train[s : s + 30], w)]
        assert len(matches) == 1
        starts.append(matches[0])
    assert sorted(starts) == list(range(0, len(train) // 30 * 30, 30))  # each exactly once


@pytest.mark.parametrize("num_streams", [1, 3, 7, 64])
def test_eval_streams_cover_the_split_exactly_once(num_streams):
    tokens = torch.randint(0, 9, (50,))
    streams = EvalStreams(tokens, num_streams)
    rows = [streams[i] for i in range(len(streams))]
    assert len(rows) == min(num_streams, 50)
    assert torch.equal(torch.cat([t[m] for t, m in rows]), tokens)
    # padding only at the end of a stream, never before a real character
    for _, m in rows:
        assert torch.equal(m, torch.sort(m.int(), descending=True).values.bool())


def test_eval_loader_holds_the_whole_split(tmp_path):
    text = "".join(chr(ord("a") + (i * 3) % 26) for i in range(3001))
    dm = TextDataModule(str(tmp_path), path=str(write_text(tmp_path, text)), eval_batch_size=4)
    dm.setup()
    for split, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        batches = list(loader)
        assert len(batches) == 1
        tokens, mask = batches[0]
        assert tokens.shape[0] == 4 and tokens.dtype == torch.long and mask.dtype == torch.bool
        assert torch.equal(tokens[mask], dm.tokens[split])


def test_net_overrides_sets_up_lazily(tmp_path):
    dm = TextDataModule(str(tmp_path), path=str(write_text(tmp_path, "hello world" * 10)))
    assert dm.net_overrides() == {"vocab_size": len(set("hello world")) + 1}
    assert dm.vocab_size == dm.net_overrides()["vocab_size"]
    assert dm.name == "corpus"


# ------------------------------------------------------------------------------ download
def test_missing_file_without_network_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    target = tmp_path / "tinyshakespeare" / "input.txt"
    with pytest.raises(DataMissingError) as info:
        TextDataModule(str(tmp_path)).prepare_data()
    message = str(info.value)
    assert TINY_SHAKESPEARE_URL in message and str(target) in message and "place it at" in message
    assert "\n" not in message and info.value.__cause__ is None
    assert not target.parent.exists()  # no partial file, and no empty tinyshakespeare/ folder


def test_missing_file_with_download_disabled(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DataMissingError, match="download=False"):
        ensure_tiny_shakespeare(tmp_path, download=False)


def test_checksum_mismatch_names_the_file_and_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    target = tmp_path / "tinyshakespeare" / "input.txt"
    target.parent.mkdir()
    target.write_text("not shakespeare\n")
    with pytest.raises(ChecksumError) as info:
        TextDataModule(str(tmp_path)).setup()
    message = str(info.value)
    actual = hashlib.sha256(b"not shakespeare\n").hexdigest()
    assert str(target) in message and TINY_SHAKESPEARE_SHA256 in message and actual in message
    assert target.read_text() == "not shakespeare\n"


def fake_urlopen(payload: bytes):
    def urlopen(url, timeout=None):
        assert url == TINY_SHAKESPEARE_URL
        return io.BytesIO(payload)

    return urlopen


def test_corrupt_download_is_discarded(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(b"truncated"))
    with pytest.raises(ChecksumError, match="discarded"):
        ensure_tiny_shakespeare(tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its new folder is left


@needs_shared
def test_download_is_verified_and_placed(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(SHARED_FILE.read_bytes()))
    path = ensure_tiny_shakespeare(tmp_path)
    assert path == tmp_path / "tinyshakespeare" / "input.txt"
    assert path.read_bytes() == SHARED_FILE.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == ["input.txt"]


@needs_shared
def test_tiny_shakespeare_found_in_data_dir_without_download(monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    dm = TextDataModule(str(SHARED), seq_len=100, batch_size=64, max_chars=100_000)
    dm.prepare_data()
    dm.setup()
    assert dm.name == "tinyshakespeare"
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (64, 100) and batch.dtype == torch.long
    assert int(batch.max()) < dm.vocab_size
