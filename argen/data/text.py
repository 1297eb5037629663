"""Character-level text data: the vocabulary, Tiny Shakespeare download, and the DataModule.

Splits are contiguous slices of the text (default 90/5/5 %): train, then validation, then test.
The vocabulary is built from the training slice only; id 0 is an explicit unknown symbol that
stands for any character never seen in training (counted per split and reported, never a crash).

Batches
  * train: fixed-length windows ``LongTensor [B, seq_len]``: the training text cut into
    non-overlapping contiguous chunks, in shuffled order. Each window is modelled from BOS.
  * val/test: ``(tokens [S, L], mask [S, L])``: the WHOLE split cut into ``S = eval_batch_size``
    contiguous streams of equal length ``L`` (the last stream padded; ``mask`` marks real
    characters). The model scores each stream from BOS to its end, carrying its hidden state
    across windows, so every character of the split is counted exactly once. The reported NLL is
    the sum of the S stream log-likelihoods divided by the number of characters; with
    ``eval_batch_size=1`` it is exactly the NLL of the split as one sequence. S > 1 restarts the
    context S times (a negligible difference for S << split length) and is S times faster.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from argen.data.distributed import eval_sampler, train_sampler
from argen.data.download import ChecksumError, DataMissingError, InvalidDataError, sha256_file
from argen.data.download import download as download_file

log = logging.getLogger(__name__)

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_RELPATH = Path("tinyshakespeare") / "input.txt"
UNKNOWN_CHAR = "\ufffd"
SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------------- vocabulary
class CharVocab:
    """Characters <-> ids. Id 0 is the unknown symbol; characters get ids 1..n in sorted order."""

    unk_id = 0

    def __init__(self, chars: Iterable[str], unk: str = UNKNOWN_CHAR) -> None:
        chars = list(chars)
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("CharVocab needs distinct single characters")
        self.chars: tuple[str, ...] = tuple(chars)
        self.unk = unk
        self.stoi = {c: i + 1 for i, c in enumerate(self.chars)}
        self.itos = (unk, *self.chars)

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The sorted set of characters of ``text`` (the training split)."""
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and (self.chars, self.unk) == (other.chars, other.unk)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} ids: unk + {''.join(self.chars)!r})"

    def encode(self, text: str) -> torch.Tensor:
        """LongTensor [len(text)]; unseen characters become ``unk_id``."""
        get = self.stoi.get
        return torch.tensor([get(c, self.unk_id) for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The text of a sequence of ids (the unknown symbol prints as ``self.unk``)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.reshape(-1).tolist()
        return "".join(self.itos[i] for i in ids)

    def unknown_chars(self, text: str) -> Counter[str]:
        """How often each character absent from the vocabulary occurs in ``text``."""
        return Counter(c for c in text if c not in self.stoi)

    def count_unknown(self, text: str) -> int:
        return sum(self.unknown_chars(text).values())

    def to_dict(self) -> dict[str, Any]:
        """Plain data (list of str) that can live in a checkpoint or a YAML/JSON file."""
        return {"chars": list(self.chars), "unk": self.unk}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> CharVocab:
        return cls(state["chars"], unk=state.get("unk", UNKNOWN_CHAR))


# --------------------------------------------------------------------------------- files
def ensure_tiny_shakespeare(data_dir: str | Path, download: bool = True) -> Path:
    """Path of ``<data_dir>/tinyshakespeare/input.txt``, downloading it if needed; checksummed."""
    target = Path(data_dir) / TINY_SHAKESPEARE_RELPATH
    if target.is_file():
        actual = sha256_file(target)
        if actual != TINY_SHAKESPEARE_SHA256:
            raise ChecksumError(target, TINY_SHAKESPEARE_SHA256, actual)
        return target
    if not download:
        raise DataMissingError(target, TINY_SHAKESPEARE_URL, "download=False")
    download_file(TINY_SHAKESPEARE_URL, target, TINY_SHAKESPEARE_SHA256)
    log.info("Downloaded Tiny Shakespeare to %s", target)
    return target


def read_text(path: str | Path) -> str:
    """The exact characters of a UTF-8 file (no newline translation)."""
    path = Path(path)
    if not path.is_file():
        raise DataMissingError(
            path, None, "text file not found", advice=f"Check data.datamodule.path={path}."
        )
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidDataError(
            f"{path} is not valid UTF-8 (byte {err.start}: {data[err.start : err.start + 4]!r}); "
            "convert it to UTF-8 first"
        ) from None


def split_text(text: str, fractions: Sequence[float]) -> dict[str, str]:
    """Contiguous, non-overlapping train/val/test slices whose lengths follow ``fractions``."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise InvalidDataError(
            f"split must be three non-negative fractions summing to 1, got {fractions}"
        )
    n = len(text)
    n_train = int(n * fractions[0])
    n_val = int(n * fractions[1])
    parts = {
        "train": text[:n_train],
        "val": text[n_train : n_train + n_val],
        "test": text[n_train + n_val :],
    }
    empty = [name for name, part in parts.items() if not part]
    if empty:
        raise InvalidDataError(
            f"split {fractions} of a {n}-character text leaves {empty} empty; use more text "
            "(max_chars) or larger fractions"
        )
    return parts


# --------------------------------------------------------------------------------- datasets
class TrainWindows(Dataset):
    """Non-overlapping windows ``tokens[i*T : (i+1)*T]`` (the last partial window is dropped)."""

    def __init__(self, tokens: torch.Tensor, seq_len: int) -> None:
        if len(tokens) < seq_len:
            raise ValueError(
                f"the training split has {len(tokens)} characters, fewer than seq_len={seq_len}"
            )
        self.tokens = tokens
        self.seq_len = seq_len

    def __len__(self) -> int:
        return len(self.tokens) // self.seq_len

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.tokens[i * self.seq_len : (i + 1) * self.seq_len]


class EvalStreams(Dataset):
    """A split cut into ``num_streams`` contiguous streams of equal length (the tail padded).

    Item i is ``(tokens [L], mask [L])``; concatenating the masked-in tokens of all streams in
    order gives back the split exactly.
    """

    def __init__(self, tokens: torch.Tensor, num_streams: int, pad_id: int = 0) -> None:
        if num_streams < 1:
            raise ValueError(f"need at least one evaluation stream, got {num_streams}")
        n = len(tokens)
        self.num_streams = max(1, min(num_streams, n))
        length = math.ceil(n / self.num_streams)
        padded = torch.full((self.num_streams * length,), pad_id, dtype=torch.long)
        padded[:n] = tokens
        mask = torch.zeros(self.num_streams * length, dtype=torch.bool)
        mask[:n] = True
        self.tokens = padded.view(self.num_streams, length)
        self.mask = mask.view(self.num_streams, length)

    def __len__(self) -> int:
        return self.num_streams

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tokens[i], self.mask[i]


# --------------------------------------------------------------------------------- module
def _name_of(path: Path) -> str:
    """A short dataset name for a text file: its stem, or its folder for generic stems."""
    return (
        path.parent.name
        if path.stem in ("input", "data", "text") and path.parent.name
        else path.stem
    )


class TextDataModule(LightningDataModule):
    """Character-level language modelling data (Tiny Shakespeare unless ``path`` is given).

    Args:
        data_dir: folder holding ``tinyshakespeare/input.txt`` (downloaded there if absent).
        path: any UTF-8 text file to use instead of Tiny Shakespeare.
        split: contiguous train/val/test fractions.
        seq_len: training window length.
        batch_size: training windows per optimizer step (the global batch, split over DDP
            processes).
        eval_batch_size: number of contiguous streams each of val/test is cut into (all in one
            batch, or split across DDP ranks); 1 gives the exact single-sequence NLL.
        download: allow downloading Tiny Shakespeare.
        max_chars: use only the first ``max_chars`` characters of the text (tests, slices).
    """

    def __init__(
        self,
        data_dir: str = "data",
        path: str | None = None,
        split: Sequence[float] = (0.9, 0.05, 0.05),
        seq_len: int = 100,
        batch_size: int = 64,
        eval_batch_size: int = 32,
        num_workers: int = 0,
        download: bool = True,
        max_chars: int | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if seq_len < 1 or batch_size < 1 or eval_batch_size < 1:
            raise ValueError("seq_len, batch_size and eval_batch_size must be positive")
        if max_chars is not None and max_chars < 3:
            raise ValueError(f"max_chars must be at least 3 (one per split), got {max_chars}")
        self.data_dir = str(data_dir)
        self.path = None if path is None else str(path)
        self.split = tuple(float(f) for f in split)
        self.seq_len = int(seq_len)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.num_workers = int(num_workers)
        self.download = bool(download)
        self.max_chars = max_chars
        self.pin_memory = bool(pin_memory)
        self.name = "tinyshakespeare" if self.path is None else _name_of(Path(self.path))
        self.vocab: CharVocab | None = None
        self.tokens: dict[str, torch.Tensor] = {}
        self.num_chars: dict[str, int] = {}
        self.unknown_counts: dict[str, int] = {}
        self.unknown_chars: dict[str, Counter[str]] = {}

    # ------------------------------------------------------------------ loading
    def text_path(self) -> Path:
        """The text file, downloading Tiny Shakespeare first if needed and allowed."""
        if self.path is not None:
            return Path(self.path)
        return ensure_tiny_shakespeare(self.data_dir, download=self.download)

    def prepare_data(self, stage: str | None = None) -> None:
        """Download once (rank 0) before setup runs on every rank. Every stage needs the whole
        file (the vocabulary comes from the training slice), so ``stage`` changes nothing; it is
        accepted for the same call as the image DataModules."""
        self.text_path()

    def setup(self, stage: str | None = None) -> None:
        if self.vocab is not None:
            return
        text = read_text(self.text_path())
        if self.max_chars is not None:
            text = text[: self.max_chars]
        parts = split_text(text, self.split)
        vocab = CharVocab.from_text(parts["train"])
        for name in SPLITS:
            self.tokens[name] = vocab.encode(parts[name])
            self.num_chars[name] = len(parts[name])
            self.unknown_chars[name] = vocab.unknown_chars(parts[name])
            self.unknown_counts[name] = sum(self.unknown_chars[name].values())
            if self.unknown_counts[name]:
                seen = ", ".join(f"{c!r}x{k}" for c, k in self.unknown_chars[name].most_common(10))
                rank_zero_warn(
                    f"{self.name}: {self.unknown_counts[name]} characters of the {name} split "
                    f"never occur in training and map to the unknown symbol (id 0): {seen}"
                )
        self.vocab = vocab
        log.info(
            "%s: %s characters (train/val/test), vocabulary of %d (with unknown)",
            self.name,
            "/".join(str(self.num_chars[s]) for s in SPLITS),
            len(vocab),
        )

    @property
    def vocab_size(self) -> int:
        if self.vocab is None:
            raise RuntimeError("the vocabulary exists after setup(); call dm.setup() first")
        return len(self.vocab)

    def net_overrides(self) -> dict[str, int]:
        """Constructor arguments the model takes from the data (loads the data if needed)."""
        if self.vocab is None:
            self.setup()
        return {"vocab_size": self.vocab_size}

    # ------------------------------------------------------------------ loaders
    def _eval_loader(self, split: str) -> DataLoader:
        if self.vocab is None:
            self.setup()
        streams = EvalStreams(self.tokens[split], self.eval_batch_size)
        return DataLoader(
            streams,
            batch_size=self.eval_batch_size,
            shuffle=False,
            sampler=eval_sampler(streams, getattr(self, "trainer", None)),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        if self.vocab is None:
            self.setup()
        windows = TrainWindows(self.tokens["train"], self.seq_len)
        # batch_size is the global batch; each DDP process gets its slice of every one
        sampler = train_sampler(windows, self.batch_size, getattr(self, "trainer", None))
        return DataLoader(
            windows,
            batch_size=sampler.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


class TextFileDataModule(TextDataModule):
    """``data=text``: the user's own text file, so ``path`` is required.

    Falling back to Tiny Shakespeare here would train on the wrong text under the name of the
    user's; the constructor refuses at once, before any model or logger is built.
    """

    def __init__(self, data_dir: str = "data", path: str | None = None, **kwargs: Any) -> None:
        if not path:
            raise InvalidDataError(
                "data=text needs a text file: pass data.datamodule.path=/path/to/file.txt "
                "(or use data=tinyshakespeare for Tiny Shakespeare)"
            )
        if not Path(path).expanduser().is_file():
            raise DataMissingError(
                Path(path),
                None,
                "text file not found",
                advice=f"Check data.datamodule.path={path}.",
            )
        super().__init__(data_dir, str(Path(path).expanduser()), **kwargs)
