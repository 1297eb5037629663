"""Train an autoregressive model: ``python train.py model=made data=binarized_mnist``.

Composition only: Hydra builds the config from conf/, ``argen.run.train`` does the run.
"""

import hydra
from omegaconf import DictConfig

from argen.resolvers import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from argen.run import train

    summary = train(cfg)
    return summary.get(cfg.get("optimized_metric", "").replace("/", "_"))


if __name__ == "__main__":
    main()
