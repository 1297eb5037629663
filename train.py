"""Train an autoregressive model: ``python train.py model=made data=binarized_mnist``.

Composition only: Hydra builds the config from conf/, ``argen.run.train`` does the run. Errors the
user can fix (config, data, checkpoint) end the command with one line and exit code 2;
``HYDRA_FULL_ERROR=1`` shows the traceback.
"""

import hydra
from omegaconf import DictConfig

from argen.resolvers import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from argen.errors import exit_with_error, find_user_error
    from argen.run import train

    try:
        summary = train(cfg)
    except Exception as exc:
        user_error = find_user_error(exc)
        if user_error is None:
            raise
        exit_with_error(user_error)
    return summary.get(cfg.get("optimized_metric", "").replace("/", "_"))


if __name__ == "__main__":
    main()
