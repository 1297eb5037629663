"""Why a character model scores worse on Tiny Shakespeare's test split than on its validation split.

    python benchmarks/text_split_gap.py                      # facts about the splits only
    python benchmarks/text_split_gap.py CKPT [CKPT ...]      # plus nats/char per segment
    python benchmarks/text_split_gap.py CKPT ... --out results/tinyshakespeare/split_gap.txt

argen splits the text in order, 90/5/5 (``argen.data.text.split_text``). The validation split is
the middle of *The Taming of the Shrew*, a play whose first acts are in the training split; the
test split is the end of that play followed by the opening of *The Tempest*, a play the training
split never reaches (new speakers, new vocabulary). The script prints the split facts and, for
each checkpoint of a character model, the NLL of the validation split and of the two parts of the
test split, each scored from its own start as one sequence.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import re
from pathlib import Path

from argen.data.text import split_text
from argen.report.terminal_record import recorded_output

TEMPEST_OPENS = "\n\nMaster:\nBoatswain!"  # first lines of The Tempest in Tiny Shakespeare


def speakers(text: str) -> collections.Counter:
    return collections.Counter(re.findall(r"\n\n([A-Za-z][A-Za-z ]+):\n", "\n\n" + text))


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z']+", text)


def segments(text: str) -> dict[str, str]:
    splits = split_text(text, (0.9, 0.05, 0.05))
    test = splits["test"]
    cut = test.find(TEMPEST_OPENS)
    if cut < 0:
        raise SystemExit("error: this is not Tiny Shakespeare (The Tempest's opening not found)")
    return {
        "train": splits["train"],
        "val": splits["val"],
        "test": test,
        "test: end of The Shrew": test[:cut],
        "test: The Tempest": test[cut:],
    }


def describe(parts: dict[str, str]) -> None:
    train_words, train_speakers = set(words(parts["train"])), speakers(parts["train"])
    print(f"{'segment':<24} {'chars':>8} {'new words':>10} {'speakers unseen in train':<40}")
    for name, text in parts.items():
        if name == "train":
            continue
        ws = words(text)
        unseen = sum(w not in train_words for w in ws) / max(1, len(ws))
        new = sorted(s for s in speakers(text) if s not in train_speakers)
        print(f"{name:<24} {len(text):>8} {unseen:>10.1%} {', '.join(new[:6])}")


def score(checkpoint: str, parts: dict[str, str], window: int = 512) -> dict[str, float]:
    import torch

    from argen.training.checkpoint import load_checkpoint
    from argen.training.resolvers import register_resolvers

    register_resolvers()
    module, _ = load_checkpoint(checkpoint)
    nats = {}
    with torch.no_grad():
        for name, text in parts.items():
            if name == "train":
                continue
            tokens = module.vocab.encode(text).unsqueeze(0)
            nats[name] = -module.net.log_prob_windowed(tokens, window).item() / len(text)
    return nats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*")
    parser.add_argument(
        "--text",
        default=os.path.join(os.environ.get("ARGEN_DATA_DIR", "data"), "tinyshakespeare/input.txt"),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write what is printed to this file (e.g. results/tinyshakespeare/split_gap.txt)",
    )
    args = parser.parse_args()
    parts = segments(Path(args.text).read_text(encoding="utf-8"))
    with recorded_output(args.out):
        describe(parts)
        for checkpoint in args.checkpoints:
            print(f"\n{checkpoint}")
            for name, value in score(checkpoint, parts).items():
                print(f"  {name:<24} {value:.3f} nats/char ({value / math.log(2):.3f} bits/char)")


if __name__ == "__main__":
    main()
