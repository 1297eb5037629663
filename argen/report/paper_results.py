"""The papers' test figures that argen's models are compared against, and display names.

Binarized MNIST figures are test NLL in nats per image; CIFAR-10 figures are test bits per
dimension. A missing (data, model) pair means no paper figure applies; an entry with an empty
``value`` says why the paper gives none.
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL_NAMES = {
    "fvsbn": "FVSBN",
    "nade": "NADE",
    "made": "MADE",
    "pixelcnn": "PixelCNN",
    "gated_pixelcnn": "Gated PixelCNN",
    "row_lstm": "Row LSTM",
    "diagonal_bilstm": "Diagonal BiLSTM",
    "char_rnn": "Char-RNN",
    "autoencoder": "Autoencoder",
    "pixelsnail": "PixelSNAIL",
    "image_transformer": "Image Transformer",
    "char_transformer": "Char Transformer",
}
DATA_NAMES = {
    "binarized_mnist": "Binarized MNIST",
    "mnist": "MNIST (8-bit)",
    "cifar10": "CIFAR-10",
    "tinyshakespeare": "Tiny Shakespeare",
}
PAPER_UNITS = {"binarized_mnist": "nats", "cifar10": "bits/dim"}

PIXEL_RNN = "van den Oord et al. 2016a"
GATED_PIXELCNN = "van den Oord et al. 2016b"
NADE_PAPER = "Larochelle & Murray 2011"


@dataclass(frozen=True)
class PaperFigure:
    """A paper's test figure (``value``, as printed) and where it is (``source``)."""

    value: str
    source: str

    def cell(self) -> str:
        """``value — source``, or only the reason when the paper reports no figure."""
        return f"{self.value} — {self.source}" if self.value else self.source


PAPER_FIGURES: dict[tuple[str, str], PaperFigure] = {
    ("binarized_mnist", "fvsbn"): PaperFigure("97.45", f"{NADE_PAPER}, Table 2"),
    ("binarized_mnist", "nade"): PaperFigure("88.86", f"{NADE_PAPER}, Table 2"),
    ("binarized_mnist", "made"): PaperFigure(
        "88.40 (1 mask), 86.64 (32 masks)", "Germain et al. 2015, Table 6"
    ),
    ("binarized_mnist", "pixelcnn"): PaperFigure("81.30", f"{PIXEL_RNN}, Table 4"),
    ("binarized_mnist", "row_lstm"): PaperFigure("80.54", f"{PIXEL_RNN}, Table 4"),
    ("binarized_mnist", "diagonal_bilstm"): PaperFigure("79.20", f"{PIXEL_RNN}, Table 4"),
    ("binarized_mnist", "gated_pixelcnn"): PaperFigure(
        "", f"none ({GATED_PIXELCNN} report no binarized-MNIST figure)"
    ),
    ("cifar10", "pixelcnn"): PaperFigure("3.14", f"{PIXEL_RNN}, Table 5"),
    ("cifar10", "row_lstm"): PaperFigure("3.07", f"{PIXEL_RNN}, Table 5"),
    ("cifar10", "diagonal_bilstm"): PaperFigure("3.00", f"{PIXEL_RNN}, Table 5"),
    ("cifar10", "gated_pixelcnn"): PaperFigure("3.03", f"{GATED_PIXELCNN}, Table 1"),
    ("cifar10", "pixelsnail"): PaperFigure("2.85", "Chen et al. 2018, Table 1"),
    ("cifar10", "image_transformer"): PaperFigure("2.90", "Parmar et al. 2018, Table 4"),
    ("binarized_mnist", "pixelsnail"): PaperFigure(
        "", "none (Chen et al. 2018 report no binarized-MNIST figure)"
    ),
    ("binarized_mnist", "image_transformer"): PaperFigure(
        "", "none (Parmar et al. 2018 report no binarized-MNIST figure)"
    ),
    ("tinyshakespeare", "char_rnn"): PaperFigure("", "none (no paper reports this dataset)"),
    ("tinyshakespeare", "char_transformer"): PaperFigure(
        "", "none (no paper reports this dataset)"
    ),
}


def model_name(model: str) -> str:
    """The model's name as its paper writes it (the config name when unknown)."""
    return MODEL_NAMES.get(model, model)


def data_name(data: str) -> str:
    """The dataset's usual name (the config name when unknown)."""
    return DATA_NAMES.get(data, data)


def paper_cell(data: str, model: str) -> str:
    """The paper's figure for a model on a dataset with its source, or "—" when none applies."""
    figure = PAPER_FIGURES.get((data, model))
    return figure.cell() if figure else "—"


def paper_column(data: str) -> str:
    """The header of the paper column, with the unit the papers use for ``data``."""
    unit = PAPER_UNITS.get(data)
    return f"paper ({unit})" if unit else "paper"
