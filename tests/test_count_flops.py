"""``python -m argen.report.count_flops``: runs published before FLOP counting get the examples
and training FLOPs of each completed epoch, counted on the network their config builds."""

from __future__ import annotations

import csv

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from argen.report.count_flops import count_run
from tests.compare_fakes import ROOT
from tests.conftest import DATA_DIR, needs_data

OLD_ROWS = "epoch,val/nll,val/bits_per_dim,train/nll\n0,120.5,0.22,150.1\n1,110.25,0.2,115.0\n"


def published_run(tmp_path, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(
            "train", overrides=["logger=none", "data.datamodule.max_examples=60", *overrides]
        )
    run = tmp_path / "run"
    run.mkdir(parents=True)
    config = OmegaConf.to_container(cfg, resolve=False)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "epochs.csv").write_text(OLD_ROWS)
    return run


@needs_data("binarized_mnist")
def test_each_epoch_gets_its_examples_and_flops_and_keeps_its_metrics(tmp_path):
    run = published_run(tmp_path, "model=made", "model.module.net.hidden_sizes=[16]")
    config = yaml.safe_load((run / "config.yaml").read_text())
    del config["model"]["module"]["net"]["linear_impl"]  # a run from before packed layers
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    line = count_run(run, str(DATA_DIR))
    assert "60 examples an epoch, 2 epochs" in line
    rows = list(csv.DictReader((run / "epochs.csv").open()))
    assert [int(r["examples_seen"]) for r in rows] == [60, 120]
    per_example = [float(r["train_flops"]) / int(r["examples_seen"]) for r in rows]
    # MADE, 784 -> 16 -> 784 masked linear layers: forward 2*(784*16 + 16*784) FLOPs, and the
    # backward pass twice that less the input's gradient (2*784*16): 3x forward - 2*784*16
    forward = 2 * (784 * 16 + 16 * 784)
    assert per_example[0] == per_example[1] == pytest.approx(3 * forward - 2 * 784 * 16, rel=0.05)
    assert [r["val/nll"] for r in rows] == ["120.5", "110.25"]  # metrics untouched
    # A packed single-mask MADE does about (1 + 1/4) / 2 of that work, and is counted so
    packed = published_run(
        tmp_path / "packed",
        "model=made",
        "model.module.net.hidden_sizes=[16]",
        "model.module.net.linear_impl=packed",
    )
    count_run(packed, str(DATA_DIR))
    row = next(csv.DictReader((packed / "epochs.csv").open()))
    assert 0.5 < float(row["train_flops"]) / int(row["examples_seen"]) / per_example[0] < 0.75
    before = (run / "epochs.csv").read_text()
    assert "already has train_flops" in count_run(run, str(DATA_DIR))
    assert (run / "epochs.csv").read_text() == before


@needs_data("binarized_mnist")
def test_a_network_without_countable_flops_is_left_as_it_is(tmp_path):
    run = published_run(tmp_path, "model=nade", "model.module.net.hidden_size=8")
    assert "left as it is" in count_run(run, str(DATA_DIR))
    assert (run / "epochs.csv").read_text() == OLD_ROWS
