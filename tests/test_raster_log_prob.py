"""``log_prob`` is written once, in the raster base, and serves every raster image model."""

from __future__ import annotations

import pytest
import torch

from argen.models.cached_sampling import RasterImageModel
from argen.models.gated_pixelcnn import GatedPixelCNN
from argen.models.image_transformer import ImageTransformer
from argen.models.pixelcnn import PixelCNN
from argen.models.pixelrnn import DiagonalBiLSTM, RowLSTM
from argen.models.pixelsnail import PixelSNAIL

RASTER = (PixelCNN, GatedPixelCNN, RowLSTM, DiagonalBiLSTM, PixelSNAIL, ImageTransformer)


@pytest.mark.parametrize("cls", RASTER, ids=lambda c: c.__name__)
def test_every_raster_model_scores_through_the_base(cls):
    assert issubclass(cls, RasterImageModel)
    below_base = cls.__mro__[: cls.__mro__.index(RasterImageModel)]
    assert all("log_prob" not in vars(k) for k in below_base), f"{cls.__name__} has a log_prob"
    torch.manual_seed(0)
    model = cls((1, 3, 3))
    x = torch.bernoulli(torch.full((4, 1, 3, 3), 0.5))
    lp = model.log_prob(x)
    assert lp.shape == (4,) and bool((lp < 0).all())
    torch.testing.assert_close(lp, model.head.log_prob(x, model(x)))
    with pytest.raises(ValueError, match="unconditional"):
        model.log_prob(x, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer levels"):
        model.log_prob(x + 0.5)


def test_a_conditional_model_scores_given_its_labels():
    torch.manual_seed(0)
    model = GatedPixelCNN((1, 3, 3), num_classes=3)
    x = torch.bernoulli(torch.full((4, 1, 3, 3), 0.5))
    y = torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(model.log_prob(x, y), model.head.log_prob(x, model(x, y)))
    assert not torch.allclose(model.log_prob(x, y), model.log_prob(x, y.flip(0)))
    with pytest.raises(ValueError, match="class-conditional"):
        model.log_prob(x)
