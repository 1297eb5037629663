"""summary.json: one typed, versioned layout (``argen.training.summary``) written by ``argen.training.run`` and read by
``argen.compare``; files written before the version field load unchanged, and older text
summaries (``test_bpc``) load with the current names (the committed ones were migrated to the
current version: ``tests/test_summary_migration.py``)."""

from __future__ import annotations

import json

import pytest

from argen.report.compare_runs import INCOMPLETE, flatten_config, read_run_dir
from argen.training.run import write_summary
from argen.training.summary import (
    LEGACY_VERSION,
    SUMMARY_VERSION,
    TEXT,
    from_json,
    is_text,
    metrics,
    status_of,
    to_json,
)
from tests.compare_fakes import metrics as fake_metrics
from tests.compare_fakes import write_run

FINISHED_RUN = {
    "model": "made",
    "data": "binarized_mnist",
    "seed": 3,
    "params": 1234,
    "epochs": 5,
    "train_seconds": 12.5,
    "train_examples_per_sec": float("nan"),
    "output_dir": "logs/runs/x",
    "status": "finished",
    "val_nll": 91.9,
    "test_nll": 91.0,
    "test_bits_per_dim": 0.1676,
    "sample_seconds_per_example": 0.1,
}


def test_written_summaries_carry_the_version_first_and_no_non_finite_numbers(tmp_path):
    write_summary(dict(FINISHED_RUN), tmp_path, None)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert list(written) == ["version", *FINISHED_RUN]  # same keys, same order, version first
    assert written["version"] == SUMMARY_VERSION
    assert written["train_examples_per_sec"] is None
    assert written["test_nll"] == 91.0
    # a failure record (argen.training.run.train builds it) gets the same layout
    write_summary({"model": "made", "data": "d", "status": "failed", "error": "x"}, tmp_path, None)
    assert json.loads((tmp_path / "summary.json").read_text())["version"] == SUMMARY_VERSION
    assert json.loads((tmp_path / "summary.1.json").read_text()) == written  # kept, not lost


def test_reading_accepts_every_known_version_and_refuses_newer_ones():
    old_file = {**FINISHED_RUN, "train_examples_per_sec": None}  # as written before versions
    legacy = from_json(old_file)
    assert legacy == {**old_file, "version": LEGACY_VERSION}
    current = from_json(json.loads(json.dumps(to_json(FINISHED_RUN))))
    assert current == {**old_file, "version": SUMMARY_VERSION}
    assert metrics(current) == {"val_nll": 91.9, "test_nll": 91.0, "test_bits_per_dim": 0.1676}
    with pytest.raises(ValueError, match="newer"):
        from_json({**FINISHED_RUN, "version": SUMMARY_VERSION + 1})
    for bad in ([1, 2], "text", {"version": "1"}, {"version": -1}):
        with pytest.raises(ValueError):
            from_json(bad)


def test_status_of_failed_and_interrupted_runs():
    assert status_of({"status": "finished"}) == ("finished", "")
    assert status_of({"error": "boom"}) == ("failed", "boom")
    assert status_of({"status": "interrupted"})[1].startswith("interrupted (no error")


@pytest.mark.parametrize("version", [None, SUMMARY_VERSION])
def test_compare_reads_old_and_new_summaries_alike(tmp_path, version):
    numbers = fake_metrics(nll=90.0, bpd=0.166, speed=100.0, sample_s=0.5)
    summary = numbers if version is None else {"version": version, **numbers}
    record = read_run_dir(write_run(tmp_path, "run", "made", "binarized_mnist", 1, summary))
    assert record.status == "finished" and record.model == "made" and record.seed == 1
    assert record.test_nll == 90.0 and record.test_bpd == 0.166
    assert record.train_examples_per_sec == 100.0 and record.sample_seconds_per_example == 0.5
    assert record.params == 1000 and record.epochs == 2 and not record.is_text


@pytest.mark.parametrize("version", [None, 1])
def test_an_old_text_summary_with_test_bpc_loads_as_bits_per_character(tmp_path, version):
    """Text runs wrote ``test_bpc`` before version 2 (now ``test_bits_per_dim`` and
    ``data_kind: "text"``): compare still reads them, with per-character units."""
    old = {"val_nll": 1.48, "test_nll": 1.585, "test_bpc": 2.2867, "test_unknown_chars": 0.0}
    summary = old if version is None else {"version": version, **old}
    read = from_json(summary)
    assert read["test_bits_per_dim"] == 2.2867 and "test_bpc" not in read
    assert is_text(read) and read["version"] == (version or LEGACY_VERSION)
    assert list(metrics(read)) == ["val_nll", "test_nll", "test_bits_per_dim", "test_unknown_chars"]
    record = read_run_dir(write_run(tmp_path, "run", "char_rnn", "tinyshakespeare", 1, summary))
    assert record.status == "finished" and record.is_text
    assert record.test_nll == 1.585 and record.test_bpd == 2.2867


def test_a_new_text_summary_says_its_kind():
    new = to_json({"data_kind": TEXT, "test_nll": 1.5, "test_bits_per_dim": 2.16})
    assert new["version"] == SUMMARY_VERSION == 3
    assert is_text(from_json(json.loads(json.dumps(new))))
    assert not is_text(from_json(FINISHED_RUN))


def test_compare_lists_a_summary_from_a_newer_argen_as_unreadable(tmp_path):
    summary = {"version": SUMMARY_VERSION + 1, "test_nll": 1.0}
    record = read_run_dir(write_run(tmp_path, "run", "made", "binarized_mnist", 1, summary))
    assert record.status == INCOMPLETE and "newer" in record.reason
    assert record.test_nll is None


def test_renamed_config_keys_do_not_split_old_and_new_runs():
    """MADE's ``seed`` became ``ordering_seed``: both spellings are one setting for compare."""
    old = flatten_config({"model": {"module": {"net": {"seed": 0, "num_masks": 1}}}})
    new = flatten_config({"model": {"module": {"net": {"ordering_seed": 0, "num_masks": 1}}}})
    assert (
        old
        == new
        == {
            "model.module.net.ordering_seed": "0",
            "model.module.net.num_masks": "1",
        }
    )
