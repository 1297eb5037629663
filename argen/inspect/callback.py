"""The inspection views (``argen.inspect``) of the trained model, drawn once at the end of fitting.

Dependency maps, receptive-field growth, MADE's masks and per-pixel surprise for image models, the
per-character probabilities of a validation line for text models: PNGs in ``<run dir>/inspect/``
and, with a W&B logger, uint8 images under ``images/inspect/<view>`` (W&B renders float images
black). Off by default (``callbacks.inspect.enabled=true`` turns it on): the figures take seconds
per view, which every short test or debug run would pay.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)


class InspectLogger(L.Callback):
    """Draw ``views`` (default: every view that applies to the model) after ``fit``.

    ``num_images``: validation images the image views use; ``text``: the string the text view
    scores (default: the first full line of the validation split).
    """

    def __init__(
        self,
        enabled: bool = False,
        views: Sequence[str] | None = None,
        num_images: int = 4,
        text: str | None = None,
    ) -> None:
        self.enabled = bool(enabled)
        self.views = list(views) if views else None
        self.num_images = int(num_images)
        self.text = text
        if self.enabled and self.views:
            from argen.inspect.views import VIEWS

            unknown = [v for v in self.views if v not in VIEWS]
            if unknown:
                raise ValueError(
                    f"callbacks.inspect.views: unknown view {unknown[0]!r}; "
                    f"choose from {', '.join(VIEWS)}"
                )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.enabled and not trainer.received_sigterm:
            self.draw(trainer, pl_module)

    @rank_zero_only
    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from argen.inspect.plots import figure_to_uint8
        from argen.inspect.text import first_line
        from argen.inspect.views import applicable_views, draw_views, pick_images

        net = getattr(pl_module, "net", None)
        if net is None:
            return
        views = [v for v in (self.views or applicable_views(net)) if v in applicable_views(net)]
        if not views:
            return
        datamodule = trainer.datamodule
        images = vocab = text = None
        if any(v in ("dependency", "growth", "surprise") for v in views):
            dataset = datamodule.val_dataloader().dataset
            images = pick_images(dataset, self.num_images).to(pl_module.device)
        if "text" in views:
            vocab = pl_module.vocab
            text = self.text or first_line(vocab.decode(datamodule.tokens["val"][:4000]))
        label = type(net).__name__
        was_training = net.training
        net.eval()
        try:
            drawn = draw_views(net, views, label, images, None, vocab, text)
        finally:
            net.train(was_training)
        folder = Path(trainer.default_root_dir) / "inspect"
        images_by_key = {d.key: (figure_to_uint8(d.figure), d.caption) for d in drawn}
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        from PIL import Image

        folder.mkdir(parents=True, exist_ok=True)
        for key, (array, _) in images_by_key.items():
            Image.fromarray(array).save(folder / f"{key}.png")
        log.info(f"Inspection views ({', '.join(views)}) written to {folder}")
        if wandb_loggers:
            import wandb

            logged: dict[str, object] = {
                f"images/inspect/{key}": [wandb.Image(array, caption=caption)]
                for key, (array, caption) in images_by_key.items()
            }
            logged["epoch"] = trainer.current_epoch  # the images' step metric
            for logger in wandb_loggers:
                logger.log_metrics(logged, step=trainer.global_step)
