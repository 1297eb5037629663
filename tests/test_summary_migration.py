"""Every committed ``summary.json`` is at the current version, and ``python -m
argen.training.summary migrate`` got it there by renaming keys and setting ``version`` only: it
changes no number, fills nothing in, and a second run changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from argen.report.compare_runs import read_run_dir
from argen.training.summary import (
    SUMMARY_FILE,
    SUMMARY_VERSION,
    TEXT,
    from_json,
    main,
    metrics,
    migrate,
    read_summary_file,
)
from tests.compare_fakes import ROOT

RESULTS = ROOT / "results"
COMMITTED = sorted(RESULTS.rglob(SUMMARY_FILE))

# Summaries as older argen wrote them (taken from results/ before its migration): a text run
# with test_bpc and no version, a run finish_summary.py completed, and a version 1 file.
CHAR_RNN_V0 = {
    "model": "char_rnn",
    "data": "tinyshakespeare",
    "seed": 12345,
    "params": 3324994,
    "epochs": 4,
    "train_seconds": 1820.588,
    "train_examples_per_sec": 21.007482402422553,
    "output_dir": "logs/.../2026-11-30_15-52-10_char_rnn_tinyshakespeare_9808e8",
    "status": "finished",
    "val_nll": 1.6865519285202026,
    "test_nll": 1.7577221393585205,
    "test_bpc": 2.5358569622039795,
    "test_unknown_chars": 0.0,
}
COMPLETED_V0 = {
    "model": "gated_pixelcnn",
    "data": "binarized_mnist",
    "seed": 12345,
    "params": 218625,
    "epochs": 3,
    "train_examples_per_sec": 52.1953067779541,
    "val_nll": 86.24886322021484,
    "status": "finished",
    "test_nll": 85.72381591796875,
    "test_bits_per_dim": 0.1577465981245041,
    "sample_seconds_per_example": 0.165816145250119,
    "completed_by": "benchmarks/finish_summary.py",
    "original_error": "ImportError: cannot import name 'RasterImageModel'",
}
MADE_V1 = {
    "version": 1,
    "model": "made",
    "data": "binarized_mnist",
    "seed": 12345,
    "params": 13167440,
    "epochs": 69,
    "train_seconds": 5158.793,
    "train_examples_per_sec": 691.2603589334065,
    "status": "finished",
    "val_nll": 88.78343963623047,
    "test_nll": 88.13672637939453,
    "test_bits_per_dim": 0.16218675673007965,
    "sample_seconds_per_example": 2.523947018999934,
}


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def test_every_committed_summary_loads_at_the_current_version():
    assert COMMITTED, "results/ should hold the committed runs' summaries (found none)"
    for path in COMMITTED:
        raw = json.loads(path.read_text())
        assert raw.get("version") == SUMMARY_VERSION, f"{path}: run the migration"
        assert read_summary_file(path) == raw, f"{path}: the reader changes a current file"
        assert not any(k.endswith("_bpc") for k in raw), f"{path}: an old key is left"


def test_the_committed_text_results_say_their_kind():
    texts = sorted((RESULTS / "tinyshakespeare").rglob(SUMMARY_FILE))
    assert texts
    for path in texts:
        raw = json.loads(path.read_text())
        record = read_run_dir(path.parent)
        assert raw["data_kind"] == TEXT and record.is_text
        assert record.test_bpd == raw["test_bits_per_dim"]


def test_migrating_the_committed_results_again_changes_nothing(tmp_path):
    for path in COMMITTED:
        copy = tmp_path / path.relative_to(RESULTS)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
    assert migrate([tmp_path]) == []
    for path in COMMITTED:
        assert (tmp_path / path.relative_to(RESULTS)).read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    "old", [CHAR_RNN_V0, COMPLETED_V0, MADE_V1], ids=["text", "completed", "v1"]
)
def test_migration_renames_and_sets_the_version_only(tmp_path, old):
    path = write(tmp_path / "runs" / "a" / SUMMARY_FILE, old)
    kept = write(tmp_path / "runs" / "a" / "summary.1.json", old)  # an earlier record: not touched
    before = read_run_dir(path.parent)

    assert migrate([tmp_path / "runs"]) == [path]
    new = json.loads(path.read_text())
    assert new["version"] == SUMMARY_VERSION
    assert metrics(new) == metrics(from_json(old)), "every measured number as it was"
    assert {k: v for k, v in new.items() if k != "version"} == {
        k: v for k, v in from_json(old).items() if k != "version"
    }
    renamed = {k.replace("_bpc", "_bits_per_dim") for k in old} - {"version"}
    added = set(new) - renamed - {"version"}
    assert added == ({"data_kind"} if "test_bpc" in old else set()), "nothing filled in"
    assert not {"budget_kind", "examples_seen", "train_flops", "cpu_seconds"} & set(new)
    assert read_run_dir(path.parent) == before, "compare reads the run as before"
    assert kept.read_text() == json.dumps(old, indent=2) + "\n"

    text = path.read_bytes()
    assert migrate([path]) == [] and path.read_bytes() == text  # idempotent


def test_migration_refuses_a_file_it_cannot_migrate_and_writes_nothing(tmp_path):
    good = write(tmp_path / "a" / SUMMARY_FILE, MADE_V1)
    newer = write(tmp_path / "b" / SUMMARY_FILE, {**MADE_V1, "version": SUMMARY_VERSION + 1})
    with pytest.raises(ValueError, match=f"{newer}.*newer"):
        migrate([tmp_path])
    assert json.loads(good.read_text()) == MADE_V1, "nothing written when one file is refused"

    newer.unlink()
    both = write(tmp_path / "c" / SUMMARY_FILE, {**CHAR_RNN_V0, "test_bits_per_dim": 9.0})
    with pytest.raises(ValueError, match="would change 'test_bpc'"):
        migrate([tmp_path])  # two different numbers for one key: no silent choice
    assert json.loads(good.read_text()) == MADE_V1 and json.loads(both.read_text())["test_bpc"]


def test_the_command_reports_what_it_did_and_refuses_a_bad_path(tmp_path, capsys):
    path = write(tmp_path / "run" / SUMMARY_FILE, CHAR_RNN_V0)
    assert main(["migrate", str(tmp_path)]) == 0
    assert f"migrated {path}" in capsys.readouterr().out
    assert main(["migrate", str(tmp_path)]) == 0
    assert "0 summary.json file(s) rewritten" in capsys.readouterr().out

    assert main(["migrate", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing: no such directory" in err
