"""Train an autoregressive model: ``python train.py model=made data=binarized_mnist``.

Composition only: Hydra builds the config from conf/, ``argen.training.run.train`` does the run. Errors the
user can fix (config, data, checkpoint), and Hydra's own composition errors (a misspelt group choice,
an unknown key, an override that does not parse), end the command with one line and exit code 2;
``HYDRA_FULL_ERROR=1`` shows the traceback.
"""

import hydra
from omegaconf import DictConfig

from argen.training.compose_errors import composition_errors_in_one_line, restore_full_error_setting
from argen.training.hydra_files import write_hydra_files_atomically
from argen.training.resolvers import register_resolvers

register_resolvers()
write_hydra_files_atomically()  # .hydra/*.yaml written whole or not at all (argen.core.atomic)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    restore_full_error_setting()  # composition is over: the run sees the user's HYDRA_FULL_ERROR
    from argen.core.errors import exit_with_error, find_user_error
    from argen.training.run import train

    try:
        summary = train(cfg)
    except Exception as exc:
        user_error = find_user_error(exc)
        if user_error is None:
            raise
        exit_with_error(user_error)
    return summary.get(cfg.get("optimized_metric", "").replace("/", "_"))


if __name__ == "__main__":
    with composition_errors_in_one_line():
        main()
