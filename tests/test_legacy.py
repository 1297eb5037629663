"""Checkpoints and run directories written before argen's modules moved into packages still
load (``argen.training.legacy``): their configs' ``_target_`` paths are made current on load."""

from __future__ import annotations

import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from argen.modules.density import DensityModule
from argen.modules.text import TextModule
from argen.report.compare_runs import read_config
from argen.training.callbacks.config_in_checkpoint import CONFIG_KEY
from argen.training.checkpoint import load_checkpoint
from argen.training.legacy import current_target, upgrade_targets

OLD_MADE = {
    "model": {
        "name": "made",
        "module": {
            "_target_": "argen.density_module.DensityModule",
            "net": {"_target_": "argen.models.made.MADE", "shape": [1, 4, 4], "hidden_sizes": [8]},
            "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
            "scheduler": {
                "_target_": "argen.optim.warmup_cosine",
                "_partial_": True,
                "warmup_steps": 1,
                "total_steps": 5,
            },
        },
    },
    "callbacks": {"inspect": {"_target_": "argen.callbacks.inspect.InspectLogger"}},
}


def test_old_paths_map_to_the_current_ones_and_current_ones_stay():
    assert current_target("argen.text_module.CharRNNModule") == "argen.modules.text.TextModule"
    assert current_target("argen.density_module.DensityModule") == (
        "argen.modules.density.DensityModule"
    )
    assert current_target("argen.callbacks.throughput.Throughput") == (
        "argen.training.callbacks.throughput.Throughput"
    )
    assert current_target("argen.callbacks.inspect.InspectLogger") == (
        "argen.inspect.callback.InspectLogger"
    )
    for current in [
        "argen.modules.density.DensityModule",
        "argen.models.made.MADE",
        "torch.nn.Linear",
    ]:
        assert current_target(current) == current
    assert current_target("argen.optimizer_x.Y") == "argen.optimizer_x.Y"  # a prefix, not a module


def test_every_upgraded_target_resolves_to_a_class_or_function():
    from hydra.utils import get_object

    upgraded = upgrade_targets(OLD_MADE)
    targets = [
        upgraded["model"]["module"]["_target_"],
        upgraded["model"]["module"]["scheduler"]["_target_"],
        upgraded["callbacks"]["inspect"]["_target_"],
        current_target("argen.text_module.CharRNNModule"),
    ]
    for target in targets:
        assert callable(get_object(target)), target
    assert get_object(targets[-1]) is TextModule


def test_an_old_checkpoint_rebuilds_its_model_with_its_weights(tmp_path):
    torch.manual_seed(0)
    current = instantiate(OmegaConf.create(upgrade_targets(OLD_MADE)).model.module)
    path = tmp_path / "old.ckpt"
    torch.save({CONFIG_KEY: OLD_MADE, "state_dict": current.state_dict()}, path)
    module, cfg = load_checkpoint(path)
    assert isinstance(module, DensityModule)
    assert cfg.model.module._target_ == "argen.modules.density.DensityModule"
    x = torch.randint(0, 2, (3, 1, 4, 4)).float()
    assert torch.equal(module.net.log_prob(x), current.eval().net.log_prob(x))


def test_an_old_run_directory_reads_as_todays_set_up(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(OLD_MADE))
    assert read_config(tmp_path) == upgrade_targets(OLD_MADE)
    assert read_config(tmp_path)["model"]["module"]["_target_"].startswith("argen.modules.")


def test_a_made_run_from_before_packed_layers_resumes_with_dense_layers(tmp_path):
    """Its optimizer state has the dense layers' shapes: the resumed run builds them."""
    from argen.training.run import check_resume_checkpoint, resume_with_its_layers

    old = {**OLD_MADE, "data": {"name": "binarized_mnist"}}
    path = tmp_path / "old.ckpt"
    torch.save({CONFIG_KEY: old, "state_dict": {}}, path)
    net = {"_target_": "argen.models.made.MADE", "linear_impl": "auto"}
    cfg = OmegaConf.create(
        {"model": {"name": "made", "module": {"net": net}}, "data": {"name": "binarized_mnist"}}
    )
    resume_with_its_layers(cfg, check_resume_checkpoint(cfg, str(path)), str(path))
    assert cfg.model.module.net.linear_impl == "dense"
    new = {**old, "model": {**old["model"], "module": {"net": net}}}
    torch.save({CONFIG_KEY: new, "state_dict": {}}, path)  # written with linear_impl: as asked
    cfg.model.module.net.linear_impl = "auto"
    resume_with_its_layers(cfg, check_resume_checkpoint(cfg, str(path)), str(path))
    assert cfg.model.module.net.linear_impl == "auto"
