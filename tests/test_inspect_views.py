"""argen.inspect beyond the dependency maps: MADE's masks (the lecture's n = 3 example), per-character
probabilities whose total is ``log_prob``, per-pixel surprise that sums to the NLL, the figures, the
``python -m argen.inspect`` command (one-line refusals before any data is read) and the callback."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from argen.inspect import __main__ as cli
from argen.inspect import callback as inspect_callback
from argen.inspect.conditionals import InspectError, ordering_rank
from argen.inspect.masks import lecture_made, made_connectivity
from argen.inspect.plots import figure_to_uint8
from argen.inspect.surprise import pixel_surprise
from argen.inspect.text import char_probabilities, first_line
from argen.inspect.views import applicable_views, check_views, draw_views
from argen.models.char_rnn import CharRNN
from argen.models.char_transformer import CharTransformer
from argen.models.fvsbn import FVSBN
from argen.models.gated_pixelcnn import GatedPixelCNN
from argen.models.image_transformer import ImageTransformer
from argen.models.made import MADE
from argen.models.nade import NADE
from argen.models.pixelcnn import PixelCNN
from argen.models.pixelrnn import RowLSTM
from argen.report.plot_axes import overlapping_texts
from tests.conftest import DATA_DIR, needs_data
from tests.test_sample_cli import VOCAB, write_checkpoint


# ----------------------------------------------------------------------------------- masks
def test_lecture_made_reproduces_the_n3_example():
    """Ordering x2, x3, x1 (input integers 3, 1, 2); hidden connections kept iff m(k) >= m(j),
    output connections iff m(d) > m(k); so p(x2) sees nothing, p(x3 | x2), p(x1 | x2, x3)."""
    conn = made_connectivity(lecture_made())
    assert conn.order.tolist() == [1, 2, 0]
    assert conn.degrees[0].tolist() == [3, 1, 2] and conn.degrees[-1].tolist() == [3, 1, 2]
    for hidden in conn.degrees[1:-1]:
        assert ((hidden >= 1) & (hidden <= 2)).all(), "hidden integers lie in [1, n - 1]"
    for mask, d_in, d_out in zip(
        conn.masks[:-1], conn.degrees[:-2], conn.degrees[1:-1], strict=True
    ):
        assert torch.equal(mask, d_out[:, None] >= d_in[None, :])
    assert torch.equal(conn.masks[-1], conn.degrees[-1][:, None] > conn.degrees[-2][None, :])
    assert conn.reach.tolist() == [[False, True, True], [False, False, False], [False, True, False]]
    assert conn.inputs_per_output.tolist() == [2, 0, 1]
    assert (~conn.masks[0]).any(), "some paths are cut"


def test_made_inputs_per_output_never_exceed_the_earlier_inputs():
    model = MADE((1, 5, 5), 2, hidden_sizes=[8], ordering="random", num_masks=3, ordering_seed=2)
    for mask in range(3):
        conn = made_connectivity(model, mask)
        rank = torch.empty(25, dtype=torch.long)
        rank[conn.order] = torch.arange(25)
        assert (conn.inputs_per_output <= rank).all()
        assert not (conn.reach & (rank[None, :] >= rank[:, None])).any()
    assert model.mask_index == 0, "the model's own mask is restored"


# ----------------------------------------------------------------------------------- text
@pytest.mark.parametrize(
    "net",
    [
        CharRNN(len(VOCAB), hidden_size=8, num_layers=1),
        CharRNN(len(VOCAB), embedding="learned", embedding_dim=4, cell="gru", hidden_size=8),
        CharTransformer(len(VOCAB), context_size=6, dim=8, num_layers=1, num_heads=2),
    ],
)
def test_char_probabilities_multiply_to_the_models_probability(net):
    torch.manual_seed(0)
    net.eval()
    text = "ab cab cc ba b"  # longer than the Transformer's context: its strided rule applies
    steps, total = char_probabilities(net, VOCAB, text, top_k=3)
    with torch.no_grad():
        expected = float(net.log_prob(VOCAB.encode(text)[None])[0])
    assert total == pytest.approx(expected, abs=1e-5)
    assert sum(math.log(s.prob) for s in steps) == pytest.approx(expected, abs=1e-5)
    assert "".join(s.char for s in steps) == text
    for step in steps:
        probs = [p for _, p in step.top]
        assert probs == sorted(probs, reverse=True) and len(probs) == 3
        assert step.prob <= probs[0] + 1e-12, "nothing beats the most likely alternative"
        if step.char in [c for c, _ in step.top]:
            assert dict(step.top)[step.char] == pytest.approx(step.prob)


def test_char_probabilities_refuse_an_image_model_and_empty_text():
    with pytest.raises(InspectError, match="text models"):
        char_probabilities(PixelCNN((1, 4, 4), 2, hidden_channels=4, num_layers=1), VOCAB, "ab")
    with pytest.raises(InspectError, match="empty"):
        char_probabilities(CharRNN(len(VOCAB), hidden_size=4, num_layers=1), VOCAB, "")


def test_first_line_is_a_whole_line_of_the_data():
    text = "ed of a line\nFirst Citizen:\nBefore we proceed any further, hear me speak.\nAll:\n"
    assert first_line(text) == "First Citizen:"
    assert first_line(text, min_chars=20) == "Before we proceed any further, hear me speak."[:48]


# ----------------------------------------------------------------------------------- surprise
IMAGE_MODELS = [
    lambda: FVSBN((1, 4, 4), 2, ordering="random"),
    lambda: NADE((1, 4, 4), 2, hidden_size=5),
    lambda: MADE((1, 4, 4), 2, hidden_sizes=[6]),
    lambda: PixelCNN((3, 4, 4), 4, hidden_channels=6, num_layers=1),
    lambda: PixelCNN(
        (3, 4, 4), 8, hidden_channels=6, num_layers=1, head="logistic_mixture", num_mixtures=2
    ),
    lambda: GatedPixelCNN((1, 4, 4), 2, hidden_channels=4, num_layers=2, kernel_size=3),
    lambda: RowLSTM((1, 4, 4), 2, hidden_channels=4, num_layers=1),
    lambda: ImageTransformer((3, 3, 3), 4, dim=8, num_layers=1, num_heads=2),
]


@pytest.mark.parametrize("make", IMAGE_MODELS)
def test_per_pixel_surprise_sums_to_the_images_nll(make):
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randint(model.num_levels, (3, *model.shape)).float()
    surprise = pixel_surprise(model, x)
    assert surprise.shape == x.shape and (surprise >= 0).all()
    nll = -model.log_prob(x).double().detach()
    assert torch.allclose(surprise.sum(dim=(1, 2, 3)), nll, atol=1e-4)


def test_surprise_of_a_mixture_is_its_first_component():
    model = MADE((1, 3, 3), 2, hidden_sizes=[6], ordering="random", num_masks=3).eval()
    model.use_mask(2)
    x = torch.randint(2, (2, 1, 3, 3)).float()
    surprise = pixel_surprise(model, x).sum(dim=(1, 2, 3))
    model.use_mask(0)
    first = -model.log_prob(x, num_masks=1).double().detach()
    assert torch.allclose(surprise, first, atol=1e-5)
    assert not torch.allclose(surprise, -model.log_prob(x).double().detach(), atol=1e-5)
    assert torch.equal(ordering_rank(model).flatten()[model.ordering], torch.arange(9))


# ----------------------------------------------------------------------------------- figures
def test_every_view_draws_a_titled_figure_with_a_colour_bar():
    torch.manual_seed(0)
    model = MADE((1, 6, 6), 2, hidden_sizes=[10]).eval()
    x = torch.randint(2, (2, 1, 6, 6)).float()
    assert applicable_views(model) == ["dependency", "masks", "surprise"]
    drawn = draw_views(model, applicable_views(model), "made", x, [(0, 3, 3), (0, 5, 0)])
    assert [d.key for d in drawn] == ["dependency", "masks_lecture", "masks_reach", "surprise"]
    for d in drawn:
        assert d.figure._suptitle is not None and d.figure._suptitle.get_text()
        assert not overlapping_texts(d.figure), d.key
        image = figure_to_uint8(d.figure)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert drawn[0].numbers["inputs_seen"][0] <= drawn[0].numbers["inputs_before"][0]
    cnn = PixelCNN((1, 6, 6), 2, hidden_channels=4, num_layers=2).eval()
    growth = draw_views(cnn, ["growth"], "pixelcnn", x, [(0, 4, 2)])[0]
    assert not overlapping_texts(growth.figure)
    sizes = growth.numbers["field_sizes"]
    assert sizes == sorted(sizes) and sizes[0] > 0, "the field only grows"
    rnn = CharRNN(len(VOCAB), hidden_size=4, num_layers=1).eval()
    (text,) = draw_views(rnn, ["text"], "char_rnn", vocab=VOCAB, text="ab c")
    assert text.numbers["log_prob"] == pytest.approx(text.numbers["model_log_prob"], abs=1e-5)
    assert not overlapping_texts(text.figure)


def test_views_that_do_not_apply_are_refused():
    cnn = PixelCNN((1, 4, 4), 2, hidden_channels=4, num_layers=1)
    with pytest.raises(InspectError, match="masks view does not apply to PixelCNN"):
        check_views(cnn, ["masks"])
    with pytest.raises(InspectError, match="growth view does not apply to CharRNN"):
        check_views(CharRNN(3, hidden_size=4, num_layers=1), ["growth"])
    assert "growth" not in applicable_views(ImageTransformer((1, 3, 3), 2, dim=8, num_heads=2))


# ----------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect_ckpts")
    made = write_checkpoint(
        root / "made.ckpt", "made", ["data.shape=[1,4,4]", "model.module.net.hidden_sizes=[5]"]
    )
    rnn = write_checkpoint(
        root / "char_rnn.ckpt",
        "char_rnn",
        [
            "data=tinyshakespeare",
            f"model.module.net.vocab_size={len(VOCAB)}",
            "model.module.net.hidden_size=4",
            "model.module.net.num_layers=1",
        ],
    )
    return {"made": made, "char_rnn": rnn}


@pytest.fixture
def no_data(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("read data before refusing the command line")

    monkeypatch.setattr(cli, "load_images", forbidden)
    monkeypatch.setattr(cli, "default_text", forbidden)


def refusal(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_cli_refuses_bad_input_in_one_line_before_reading_data(
    checkpoints, no_data, capsys, tmp_path
):
    out = str(tmp_path / "out")
    made, rnn = str(checkpoints["made"]), str(checkpoints["char_rnn"])
    assert "text view does not apply to MADE" in refusal(
        capsys, made, "--out", out, "--view", "text"
    )
    assert "outside the 1x4x4 image" in refusal(capsys, made, "--out", out, "--target", "9,1")
    assert "ROW,COL" in refusal(capsys, made, "--out", out, "--target", "a,b")
    assert "does not exist" in refusal(capsys, str(tmp_path / "nope.ckpt"), "--out", out)
    assert "--images must be at least 1" in refusal(capsys, made, "--out", out, "--images", "0")
    # the second checkpoint is refused before the first one's pictures are drawn
    assert "masks view does not apply to CharRNN" in refusal(
        capsys, made, rnn, "--out", out, "--view", "masks"
    )
    assert not (tmp_path / "out").exists()


def test_cli_draws_masks_and_text_without_data(checkpoints, no_data, capsys, tmp_path):
    out = tmp_path / "out"
    cli.main([str(checkpoints["made"]), "--out", str(out), "--view", "masks"])
    cli.main([str(checkpoints["char_rnn"]), "--out", str(out / "rnn"), "--text", "ab ca"])
    assert sorted(p.name for p in out.glob("*.png")) == ["masks_lecture.png", "masks_reach.png"]
    manifest = json.loads((out / "rnn" / cli.MANIFEST).read_text())
    (view,) = manifest["views"]
    assert view["file"] == "text.png" and (out / "rnn" / "text.png").is_file()
    assert view["numbers"]["log_prob"] == pytest.approx(view["numbers"]["model_log_prob"])
    assert manifest["model"] == "char_rnn" and manifest["inspect_command"].startswith(
        "python -m argen.inspect"
    )
    printed = capsys.readouterr().out
    assert "p(x_t | x_<t)" in printed and "log p =" in printed


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_cli_draws_every_image_view_from_test_images(tmp_path):
    ckpt = write_checkpoint(
        tmp_path / "pixelcnn.ckpt",
        "pixelcnn",
        [
            "model.module.net.hidden_channels=4",
            "model.module.net.num_layers=1",
            f"data.datamodule.data_dir={DATA_DIR}",
        ],
    )
    made = write_checkpoint(tmp_path / "made.ckpt", "made", ["model.module.net.hidden_sizes=[5]"])
    out = tmp_path / "out"
    cli.main([str(ckpt), str(made), "--out", str(out), "--images", "2"])
    names = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert names == {
        "dependency_comparison.png",
        *(f"pixelcnn_binarized_mnist/{v}.png" for v in ("dependency", "growth", "surprise")),
        *(
            f"made_binarized_mnist/{v}.png"
            for v in ("dependency", "surprise", "masks_lecture", "masks_reach")
        ),
    }
    manifest = json.loads((out / "pixelcnn_binarized_mnist" / cli.MANIFEST).read_text())
    surprise = next(v for v in manifest["views"] if v["view"] == "surprise")["numbers"]
    assert surprise["sum_of_maps"] == pytest.approx(surprise["model_nll"], abs=1e-3)


# ----------------------------------------------------------------------------------- callback
def test_callback_logs_uint8_images_under_images_inspect(monkeypatch, tmp_path):
    logged: list[dict] = []

    class FakeWandbLogger:
        def log_metrics(self, metrics, step):
            logged.append(metrics)

    class FakeImage:
        def __init__(self, array, caption=None):
            assert isinstance(array, np.ndarray) and array.dtype == np.uint8
            self.array, self.caption = array, caption

    import wandb

    monkeypatch.setattr(inspect_callback, "WandbLogger", FakeWandbLogger)
    monkeypatch.setattr(wandb, "Image", FakeImage)
    net = MADE((1, 4, 4), 2, hidden_sizes=[6])
    images = torch.randint(2, (5, 1, 4, 4)).float()
    dataset = torch.utils.data.TensorDataset(images, torch.zeros(5))
    datamodule = SimpleNamespace(val_dataloader=lambda: torch.utils.data.DataLoader(dataset))
    trainer = SimpleNamespace(
        datamodule=datamodule,
        default_root_dir=str(tmp_path),
        loggers=[FakeWandbLogger()],
        received_sigterm=False,
        current_epoch=3,
        global_step=7,
    )
    module = SimpleNamespace(net=net, device=torch.device("cpu"))
    inspect_callback.InspectLogger(enabled=False).on_fit_end(trainer, module)
    assert not logged, "off by default"
    inspect_callback.InspectLogger(
        enabled=True, views=["dependency", "surprise"], num_images=2
    ).on_fit_end(trainer, module)
    (metrics,) = logged
    assert set(metrics) == {"images/inspect/dependency", "images/inspect/surprise", "epoch"}
    assert sorted(p.name for p in (tmp_path / "inspect").glob("*.png")) == [
        "dependency.png",
        "surprise.png",
    ]
    with pytest.raises(ValueError, match="unknown view 'maps'"):
        inspect_callback.InspectLogger(enabled=True, views=["maps"])


# ----------------------------------------------------------------------------------- results page
def test_results_page_section_links_every_committed_picture(checkpoints, no_data, tmp_path):
    """The page's section is built from the manifests alone: every picture linked (relative to
    the page), the command that trained the model, the same text for the same files."""
    from argen.report.results_inspect import find_inspect_dir, inspect_section

    root = tmp_path / "results"
    cli.main(
        [str(checkpoints["made"]), "--out", str(root / "inspect" / "made_x"), "--view", "masks"]
    )
    cli.main(
        [str(checkpoints["char_rnn"]), "--out", str(root / "inspect" / "rnn_x"), "--text", "ab c"]
    )
    assert find_inspect_dir(tmp_path, []) is None
    runs = [root / "binarized_mnist" / "run1", root / "tinyshakespeare" / "run2"]
    for run in runs:
        run.mkdir(parents=True)
    folder = find_inspect_dir(tmp_path / "elsewhere", [str(run) for run in runs])
    assert folder == root / "inspect"
    lines = inspect_section(folder)
    links = [line[line.index("](") + 2 : -1] for line in lines if line.startswith("![")]
    assert links == [
        "inspect/made_x/masks_lecture.png",
        "inspect/made_x/masks_reach.png",
        "inspect/rnn_x/text.png",
    ]
    assert all((root / link).is_file() for link in links)
    assert "### made (binarized_mnist)" in lines and "### char_rnn (tinyshakespeare)" in lines
    assert any("the model's `log_prob`" in line for line in lines)
    assert inspect_section(folder) == lines
