"""PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks").

Both models share the paper's layout (Section 3 and Figure 5):

* a 7x7 mask-A convolution from the image to ``hidden_channels`` (the paper's 2h) feature maps;
* ``num_layers`` residual LSTM layers: a masked input-to-state convolution to the four gates
  (h maps each), the recurrence, a 1x1 mask-B convolution from h back to 2h maps, added to the
  layer input;
* ReLU, 1x1 mask-B conv, ReLU, 1x1 mask-B conv to the pixel head's parameters.

**Row LSTM** processes the image row by row. The input-to-state is a masked 1 x k convolution
over the current row (mask B: a position sees itself, channel-masked, and the pixels to its left);
the state-to-state is an unmasked 1D convolution of width k over the previous row's hidden state.
The receptive field is a triangle above the pixel: from the row r >= 1 steps up it reaches at most
``(r - 1) * (k // 2) + first_kernel_size // 2`` columns to the right, however deep the network
(one column more per row for k = 3).

**Diagonal BiLSTM** skews the map (row i shifted right by i) so that each column of the skewed map
is a diagonal of the image, then runs an LSTM column by column whose state-to-state is a 2x1
convolution along the column (the left neighbour and the pixel above, in image coordinates),
after a 1x1 mask-B input-to-state. A second LSTM does the same on the left-right mirrored map;
its output is mirrored back and shifted down one row (it has seen pixels to the right on the same
row) before being added to the first. Each layer therefore sees the whole context above and to the
left. One pixel stays out of reach: the last pixel of the previous row, for targets more than
``first_kernel_size // 2`` columns left of the right edge (only the first layer's mask-A
convolution could see it, since no later position precedes the target; see the tests).

Colours (RGB): every feature map is split into C contiguous colour groups (``masked_conv``). The
gates of group g at pixel (i, j) receive the layer input of groups <= g at (i, j) (mask B) and
everything from earlier pixels; the cell state is elementwise, so the hidden state keeps the
groups separate. The state-to-state convolutions need no channel mask: they only read states of
earlier pixels (previous row, left neighbour, or the shifted right-to-left pass).

Sampling and completion run in the raster loop of ``argen.models.cached_sampling``. The
``"cached"`` sampler (the default) is incremental: it computes every layer at one pixel at a time
from the LSTMs' cached states of the row above and the current row (``RowLSTMStepper``,
``DiagonalBiLSTMStepper``), so the work for a pixel does not grow with its row; ``"naive"`` reruns
the network on the whole image for every sub-pixel. The samples are the same. ``RowsAbove``, the
previous cached sampler (a pass over rows 0..i per sub-pixel of row i), is kept for comparison.

Paper sizes: MNIST 7 layers with h = 16; CIFAR-10 12 layers with h = 128 (larger h on ImageNet).
Here ``hidden_channels`` counts the residual stream's 2h maps like ``PixelCNN``; the defaults (7
layers, 2h = 64, i.e. h = 32) are the paper's MNIST depth with twice its width, cheap enough for
28x28 on a CPU. ``hidden_channels=256, num_layers=12`` reproduces the CIFAR-10 models.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from argen.models.base import Capabilities
from argen.models.cached_sampling import RasterImageModel, check_sampler
from argen.models.masked_conv import MaskedConv2d
from argen.models.pixel_heads import make_head
from argen.models.pixel_ops import (
    ConvAt,
    apply_relu_stack,
    linear,
    masked_weight,
    pixel_params,
    pointwise,
    relu_output_stack,
)


def skew(x: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Shift row i right by i: [..., H, W, *rest] -> [..., H, W + H - 1, *rest], zeros elsewhere.

    Rows run along ``dim`` and columns along ``dim + 1`` (default: the last two dims, as in an
    NCHW map). Column t of the result holds the image diagonal {(i, t - i)}. Implemented by
    padding every row to W + H and re-reading the flat buffer with rows one shorter.
    """
    dim = dim % x.dim()
    height, width = x.shape[dim], x.shape[dim + 1]
    trailing = x.dim() - dim - 2
    padded = F.pad(x, (0, 0) * trailing + (0, height)).flatten(dim, dim + 1)
    return padded.narrow(dim, 0, height * (width + height - 1)).unflatten(
        dim, (height, width + height - 1)
    )


def unskew(x: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    """Inverse of ``skew``: [..., H, width + H - 1, *rest] -> [..., H, width, *rest]."""
    dim = dim % x.dim()
    height, skewed = x.shape[dim], x.shape[dim + 1]
    if skewed != width + height - 1:
        raise ValueError(
            f"a skewed map of height {height} and width {width} has {width + height - 1} "
            f"columns, got {skewed}"
        )
    trailing = x.dim() - dim - 2
    flat = x.flatten(dim, dim + 1)
    padded = F.pad(flat, (0, 0) * trailing + (0, height))
    return padded.unflatten(dim, (height, width + height)).narrow(dim + 1, 0, width)


def lstm_cell(
    gates: torch.Tensor, cell: torch.Tensor, dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM update from pre-activations cut into (input, forget, output, candidate) on ``dim``.

    Elementwise in the channels, so a hidden channel keeps the colour group of its gates.
    """
    size = gates.shape[dim] // 4
    sigmoid_part, g = gates.split([3 * size, size], dim=dim)
    i, f, o = torch.sigmoid(sigmoid_part).chunk(3, dim=dim)  # one op for the three gates
    cell = f * cell + i * torch.tanh(g)
    return o * torch.tanh(cell), cell


def _recurrent_weight(*shape: int) -> nn.Parameter:
    """A state-to-state weight [..., fan_in, out], initialised like ``nn.Conv1d``."""
    return nn.Parameter(torch.empty(shape).uniform_(-1.0, 1.0) / shape[-2] ** 0.5)


class RowLSTMLayer(nn.Module):
    """Residual Row LSTM layer: 2h maps -> row-by-row LSTM with h states -> 1x1 to 2h, + input.

    Runs channels-last (states [B, W, h]) so that each row step reads a dense block and the
    width-k state-to-state convolution is one matmul over the k shifted copies of the state.
    """

    def __init__(self, channels: int, kernel_size: int, num_groups: int) -> None:
        super().__init__()
        h = self.hidden = channels // 2
        self.kernel_size = kernel_size
        # Mask B over the current row; out_chunks=4 gives channel k of every gate one colour.
        self.input_to_state = MaskedConv2d(
            channels, 4 * h, (1, kernel_size), "B", num_groups, out_chunks=4
        )
        # [k taps * h, 4h] over the previous row, unmasked: that whole row precedes this one.
        # No bias: it lives in the input-to-state, so the zero padding acts as zero states.
        self.state_to_state = _recurrent_weight(kernel_size * h, 4 * h)
        self.output = MaskedConv2d(h, channels, 1, "B", num_groups)

    def forward(self, x: torch.Tensor, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """``pixels`` (the normalized image) is accepted for a uniform layer interface; unused."""
        b, _, height, width = x.shape
        half = self.kernel_size // 2
        x = x.contiguous(memory_format=torch.channels_last)
        # Input-to-state for all rows at once, [B, H, W, 4h].
        gates_in = self.input_to_state(x).permute(0, 2, 3, 1)
        state = cell = x.new_zeros(b, width, self.hidden)
        rows = []
        # unbind (not indexing): the backward pass then stacks the row gradients once instead
        # of writing a full-size zero map per row.
        for row_gates in gates_in.unbind(dim=1):
            padded = F.pad(state, (0, 0, half, half))
            taps = torch.cat([padded[:, d : d + width] for d in range(self.kernel_size)], dim=-1)
            state, cell = lstm_cell(row_gates + taps @ self.state_to_state, cell, dim=-1)
            rows.append(state)
        return x + self.output(torch.stack(rows, dim=1).permute(0, 3, 1, 2))


class DiagonalBiLSTMLayer(nn.Module):
    """Residual Diagonal BiLSTM layer: two diagonal LSTMs (left-to-right and mirrored) with h
    states each, the mirrored one shifted down a row, summed, 1x1 to 2h, + input.

    Both directions run in one loop over the skewed columns, with states [2, B, H, h] (direction
    first, channels last) so that every step reads dense blocks and the two 2x1 state-to-state
    convolutions are one batched matmul.
    """

    def __init__(self, channels: int, num_groups: int, pixel_channels: int = 0) -> None:
        super().__init__()
        h = self.hidden = channels // 2
        self.left_input = MaskedConv2d(channels, 4 * h, 1, "B", num_groups, out_chunks=4)
        # The mirrored pass is shifted down a row before use, so all it reads precedes the
        # target pixel: it needs no colour mask, and in the first layer it also reads the raw
        # pixels (``pixel_channels``). Without them the last pixel of the row above would reach
        # a target only through the first layer's 7x7 mask-A convolution, which spans 3 columns:
        # targets further left would never see it, at any depth.
        self.pixel_channels = pixel_channels
        self.right_input = nn.Conv2d(channels + pixel_channels, 4 * h, 1)
        # Per direction, [2 taps * h, 4h]: the state of the pixel above (row i - 1 of the previous
        # skewed column) and of the pixel to the left (row i). No bias: it lives in the
        # input-to-state, so the states left of the image, which column 0 reads, stay exactly
        # zero (states right of the image feed only positions right of it).
        self.state_to_state = _recurrent_weight(2, 2 * h, 4 * h)
        self.output = MaskedConv2d(h, channels, 1, "B", num_groups)

    def forward(self, x: torch.Tensor, pixels: torch.Tensor | None = None) -> torch.Tensor:
        b, _, height, width = x.shape
        h = self.hidden
        x = x.contiguous(memory_format=torch.channels_last)
        right_source = torch.cat([x, pixels], dim=1) if self.pixel_channels else x
        # [B, 4h, H, W] channels-last maps viewed as [B, H, W, 4h]; the 1x1 input-to-state
        # commutes with mirroring and skewing, and skewing after it leaves exact zeros outside
        # the image.
        left = self.left_input(x).permute(0, 2, 3, 1)
        right = self.right_input(right_source).permute(0, 2, 3, 1).flip(2)
        gates_in = skew(torch.stack([left, right]), dim=2)  # [2, B, H, W + H - 1, 4h]
        state = cell = x.new_zeros(2, b, height, h)
        columns = []
        # unbind (not indexing): the backward pass then stacks the column gradients once.
        for column_gates in gates_in.unbind(dim=3):
            above = F.pad(state, (0, 0, 1, 0))[:, :, :-1]
            taps = torch.cat([above, state], dim=-1).view(2, b * height, 2 * h)
            recurrent = torch.bmm(taps, self.state_to_state).view(2, b, height, 4 * h)
            state, cell = lstm_cell(column_gates + recurrent, cell, dim=-1)
            columns.append(state)
        left, right = unskew(torch.stack(columns, dim=3), width, dim=2).unbind(0)  # [B, H, W, h]
        right = F.pad(right.flip(2), (0, 0, 0, 0, 1, 0))[:, :-1]  # mirror back, shift down
        return x + self.output((left + right).permute(0, 3, 1, 2))


class _PixelRNN(RasterImageModel):
    """Shared body: mask-A input conv, residual recurrent layers, 1x1 output layers, pixel head."""

    def __init__(
        self,
        shape: Sequence[int],
        num_levels: int,
        hidden_channels: int,
        num_layers: int,
        head: str,
        num_mixtures: int,
        first_kernel_size: int,
        output_channels: int | None,
        sampler: str = "cached",
    ) -> None:
        super().__init__(shape, num_levels)
        self.sampler = check_sampler(sampler)
        channels = self.shape[0]
        if hidden_channels % 2 or hidden_channels < 2 * channels:
            raise ValueError(
                f"hidden_channels (2h) must be even and at least {2 * channels} "
                f"(h >= one state per colour), got {hidden_channels}"
            )
        if num_layers < 1:
            raise ValueError(f"num_layers must be positive, got {num_layers}")
        output_channels = output_channels or hidden_channels
        self.head = make_head(head, channels, num_levels, num_mixtures)
        self.input_conv = MaskedConv2d(channels, hidden_channels, first_kernel_size, "A", channels)
        self.layers = nn.ModuleList(
            self._make_layer(hidden_channels, channels, first=i == 0) for i in range(num_layers)
        )
        self.output = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(hidden_channels, output_channels, 1, "B", channels),
            nn.ReLU(),
            MaskedConv2d(output_channels, self.head.out_channels, 1, "B", channels),
        )

    def _make_layer(self, hidden_channels: int, num_groups: int, first: bool) -> nn.Module:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Levels [B, C, H, W] -> head parameters [B, C, H, W, P] of every conditional."""
        pixels = self.normalize(x)
        features = self.input_conv(pixels)
        for layer in self.layers:
            features = layer(features, pixels)
        return self.head.params(self.output(features))

    def start_cache(self, x: torch.Tensor, y: torch.Tensor | None, start: int) -> PixelRNNStepper:
        """The "cached" sampler: per-row LSTM states, work per pixel independent of its row
        (``RowLSTMStepper``, ``DiagonalBiLSTMStepper``); ``y`` must be ``None``."""
        return self._stepper(self, x)

    _stepper: type[PixelRNNStepper]


class RowsAbove:
    """The previous "cached" PixelRNN sampler, kept as a reference for the benchmark and tests:
    each sub-pixel of row i is drawn from a pass over rows 0..i, so the work for a pixel grows
    with its row (the rows below cannot change row i; tested).

    Use it by patching a model's ``start_cache`` (``benchmarks/pixelrnn_sampling_speed.py``).
    """

    def __init__(self, model: _PixelRNN, x: torch.Tensor) -> None:
        self.model, self.x = model, x

    def params(self, i: int, j: int, k: int) -> torch.Tensor:
        """[B, P] parameters of sub-pixel (k, i, j) from rows 0..i of the images being filled."""
        return self.model(self.x[:, :, : i + 1])[:, k, i, j]

    def set_level(self, i: int, j: int, k: int, value: torch.Tensor) -> None:
        """Nothing to do: ``params`` reads the images the loop writes."""

    def row_done(self, i: int) -> None:
        """Nothing to do."""


class PixelRNNStepper:
    """Incremental PixelRNN sampling state: the activations of every layer at one pixel at a time,
    from caches of the current row and per-row LSTM states of the row above.

    In both PixelRNNs the activations at pixel (i, j) depend on the image only at pixels before
    (i, j) and on the colours before each group at (i, j) itself, so they are final once the pixel
    is (they are computed for each colour k and the last computation, for k = C - 1, is final).
    Per sub-pixel: the 7x7 mask-A convolution at (i, j) (``ConvAt`` on a padded image cache), then
    per layer a step at (i, j) that reads only cached states (``_column``), then the 1x1 output
    stack. At each row's start and end the subclass updates its per-row states (``_start_row``,
    ``_finish_row``). Work per pixel: O(layers), plus O(width * layers) per row; none of it grows
    with the row index. Rows or columns the loop skips (a completion's observed prefix) are
    computed when first needed (``_catch_up``). Nothing is stored on the module.
    """

    def __init__(self, model: _PixelRNN, x: torch.Tensor) -> None:
        self.model = model
        self.batch, self.channels, self.height, self.width = x.shape
        self.num_layers = len(model.layers)
        self.input_conv = ConvAt(model.input_conv)
        # Channel-last, zero-padded normalized image, as the mask-A convolution reads it.
        self.pixels = self.input_conv.cache(model.normalize(x))
        self.output = relu_output_stack(model.output)
        self.layer_outputs = [pointwise(layer.output) for layer in model.layers]
        self.row, self.columns_done = 0, 0  # pixels before (row, columns_done) are cached
        self._start_row(0)

    def set_level(self, i: int, j: int, k: int, value: torch.Tensor) -> None:
        """Write the normalized level into the image cache."""
        conv = self.input_conv
        self.pixels[:, i + conv.top, j + conv.left, k] = self.model.normalize(value)

    def params(self, i: int, j: int, k: int) -> torch.Tensor:
        """[B, P] parameters of sub-pixel (k, i, j)."""
        self._catch_up(i, j)
        features = self._column(i, j)
        if k == self.channels - 1:  # colours 0..C-2 are final: so is every activation here
            self.columns_done = j + 1
        return pixel_params(self.model.head, apply_relu_stack(self.output, features))[:, k]

    def row_done(self, i: int) -> None:
        """Row ``i`` is complete: update the per-row states."""
        self._catch_up(i + 1, 0)

    def _catch_up(self, i: int, j: int) -> None:
        """Compute the activations of every pixel before (i, j) not yet cached (all final)."""
        while self.row < i:
            for column in range(self.columns_done, self.width):
                self._column(self.row, column)
            if self.row + 1 < self.height:
                self._finish_row(self.row)
                self._start_row(self.row + 1)
            self.row, self.columns_done = self.row + 1, 0
        for column in range(self.columns_done, j):
            self._column(i, column)
        self.columns_done = max(self.columns_done, j)

    def _start_row(self, i: int) -> None:
        """Prepare row ``i`` (the previous row's states are final)."""
        raise NotImplementedError

    def _column(self, i: int, j: int) -> torch.Tensor:
        """Every layer at pixel (i, j), written into the row caches: features [B, 2h] before the
        output stack."""
        raise NotImplementedError

    def _finish_row(self, i: int) -> None:
        """Row ``i`` is complete (and is not the last): make it the row above."""
        raise NotImplementedError


class RowLSTMStepper(PixelRNNStepper):
    """Row LSTM: the previous row's states give each layer's state-to-state term for the whole
    row at the row's start (one batched matmul over the layers); at pixel (i, j) a layer needs its
    input at columns j - k//2 .. j of row i (mask B: the input-to-state's right half is cut),
    cached per layer, and the previous row's cell at column j. Per-pixel caches are lists of
    [B, ...] tensors, one per column, so that a pixel reads dense blocks and writes none.
    """

    def __init__(self, model: RowLSTM, x: torch.Tensor) -> None:
        layers = list(model.layers)
        self.kernel_size = model.kernel_size
        self.half = self.kernel_size // 2
        self.hidden = layers[0].hidden
        self.input_weights, self.input_biases = [], []
        for layer in layers:
            weight = masked_weight(layer.input_to_state)[:, :, 0, : self.half + 1]  # [4h, 2h, taps]
            # [taps][2h, 4h]: tap t reads column j - half + t
            self.input_weights.append(list(weight.permute(2, 1, 0).contiguous()))
            self.input_biases.append(layer.input_to_state.bias)
        self.input_biases = torch.stack(self.input_biases)[:, None, None]  # [L, 1, 1, 4h]
        self.state_weights = torch.stack([layer.state_to_state for layer in layers])  # [L, kh, 4h]
        batch, _, _, width = x.shape
        self.state = x.new_zeros(len(layers), width, batch, self.hidden)  # the row above
        self.cell = list(torch.zeros_like(self.state))
        super().__init__(model, x)

    def _start_row(self, i: int) -> None:
        layers, batch, width = self.num_layers, self.batch, self.width
        padded = F.pad(self.state.transpose(1, 2), (0, 0, self.half, self.half))  # [L, B, W+, h]
        taps = torch.cat([padded[:, :, d : d + width] for d in range(self.kernel_size)], dim=-1)
        recurrent = torch.bmm(taps.flatten(1, 2), self.state_weights).view(layers, batch, width, -1)
        # [L][W] -> [B, 4h]: everything in the gates that row i's pixels cannot change.
        recurrent = (recurrent + self.input_biases).transpose(1, 2).contiguous()
        self.recurrent = [list(r) for r in recurrent]
        zeros = torch.zeros_like(self.state[0, 0])
        self.new_states = [[zeros] * width for _ in range(layers)]
        self.new_cells = [[zeros] * width for _ in range(layers)]
        self.inputs: list[list[torch.Tensor]] = [[] for _ in range(layers)]  # [L][columns so far]

    def _column(self, i: int, j: int) -> torch.Tensor:
        features = self.input_conv.at(self.pixels, i, j)
        for index in range(self.num_layers):
            inputs = self.inputs[index]
            del inputs[j:]  # a recomputed column (the next colour of pixel j) replaces its input
            inputs.append(features)
            gates = self.recurrent[index][j]
            for tap, weight in enumerate(self.input_weights[index]):
                column = j - self.half + tap
                if column >= 0:  # columns left of the image are the conv's zero padding
                    gates = torch.addmm(gates, inputs[column], weight)
            state, cell = lstm_cell(gates, self.cell[index][j], dim=-1)
            self.new_states[index][j] = state
            self.new_cells[index][j] = cell
            features = features + linear(state, *self.layer_outputs[index])
        return features

    def _finish_row(self, i: int) -> None:
        self.state = torch.stack([torch.stack(states) for states in self.new_states])
        self.cell = self.new_cells


class DiagonalBiLSTMStepper(PixelRNNStepper):
    """Diagonal BiLSTM: in image coordinates the left-to-right LSTM's state at (i, j) comes from
    its states at (i - 1, j) and (i, j - 1) and its cell at (i, j - 1): one step per pixel and
    layer from the row above's states and the current row's. The mirrored LSTM runs right to left
    and reaches row i only shifted down, from row i - 1: it runs over a row once the row is
    complete (all layers at once; their inputs on that row are final), and its states are added
    to every pixel of the next row. Per-pixel caches are lists of [B, ...] tensors, one per column.
    """

    def __init__(self, model: DiagonalBiLSTM, x: torch.Tensor) -> None:
        layers = list(model.layers)
        h = self.hidden = layers[0].hidden
        self.left_inputs = [pointwise(layer.left_input)[0] for layer in layers]
        self.left_biases = torch.stack([layer.left_input.bias for layer in layers])[:, None, None]
        self.right_inputs = [pointwise(layer.right_input) for layer in layers]
        recurrent = torch.stack([layer.state_to_state for layer in layers])  # [L, 2, 2h, 4h]
        self.from_above = recurrent[:, 0, :h]  # [L, h, 4h]: left-to-right, above
        self.from_left = list(recurrent[:, 0, h:])  # [L][h, 4h]: left-to-right, left
        self.right_recurrent = recurrent[:, 1]  # [L, 2h, 4h]: right-to-left, above then right
        batch, _, _, width = x.shape
        self.left_above = x.new_zeros(len(layers), width, batch, h)  # both passes, row i - 1
        self.right_above = torch.zeros_like(self.left_above)
        self.right_rows = [list(r) for r in self.right_above]
        super().__init__(model, x)

    def _start_row(self, i: int) -> None:
        layers, batch, width, h = self.num_layers, self.batch, self.width, self.hidden
        above = torch.bmm(self.left_above.flatten(1, 2), self.from_above)
        # [L][W] -> [B, 4h]: the left-to-right gates' terms that row i's pixels cannot change.
        self.above = [list(r) for r in above.view(layers, width, batch, 4 * h) + self.left_biases]
        # Column 0 holds the zero state and cell left of the image; pixel j sits at j + 1.
        zeros = self.left_above.new_zeros(batch, h)
        self.left_states = [[zeros] * (width + 1) for _ in range(layers)]
        self.left_cells = [[zeros] * (width + 1) for _ in range(layers)]
        self.inputs: list[list[torch.Tensor]] = [[] for _ in range(layers)]  # [L][columns so far]

    def _column(self, i: int, j: int) -> torch.Tensor:
        features = self.input_conv.at(self.pixels, i, j)
        for index in range(self.num_layers):
            del self.inputs[index][j:]  # a recomputed column replaces its input
            self.inputs[index].append(features)
            states = self.left_states[index]
            gates = torch.addmm(self.above[index][j], features, self.left_inputs[index])
            gates = torch.addmm(gates, states[j], self.from_left[index])
            cells = self.left_cells[index]
            states[j + 1], cells[j + 1] = lstm_cell(gates, cells[j], dim=-1)
            shifted = states[j + 1] + self.right_rows[index][j]
            features = features + linear(shifted, *self.layer_outputs[index])
        return features

    def _finish_row(self, i: int) -> None:
        conv = self.input_conv
        pixels = self.pixels[:, i + conv.top, conv.left : conv.left + self.width]  # [B, W, C]
        gates_in = []
        for index, layer in enumerate(self.model.layers):
            source = torch.stack(self.inputs[index])  # [W, B, 2h]
            if layer.pixel_channels:
                source = torch.cat([source, pixels.transpose(0, 1)], dim=-1)
            weight_t, bias = self.right_inputs[index]
            gates_in.append(torch.matmul(source, weight_t) + bias)
        gates_in = torch.stack(gates_in)  # [L, W, B, 4h]
        state = cell = torch.zeros_like(self.right_above[:, 0])  # right of the image
        right = torch.empty_like(self.right_above)
        for j in reversed(range(self.width)):
            taps = torch.cat([self.right_above[:, j], state], dim=-1)  # [L, B, 2h]
            gates = gates_in[:, j] + torch.bmm(taps, self.right_recurrent)
            state, cell = lstm_cell(gates, cell, dim=-1)
            right[:, j] = state
        self.right_above = right
        self.right_rows = [list(r) for r in right]
        self.left_above = torch.stack([torch.stack(r[1:]) for r in self.left_states])


class RowLSTM(_PixelRNN):
    """PixelRNN with Row LSTM layers (triangular receptive field, parallel along each row).

    ``forward(x)`` returns per-sub-pixel parameters [B, C, H, W, P] for the chosen head
    (``"auto"``: bernoulli for binary data, categorical otherwise; or ``"logistic_mixture"``).
    ``kernel_size`` is the paper's k (>= 3, odd) of both the input-to-state and state-to-state
    convolutions. ``sampler``: ``"cached"`` (incremental, ``RowLSTMStepper``) or ``"naive"`` (a
    full pass per sub-pixel); identical samples.
    """

    capabilities = Capabilities()  # K levels, any channels

    def __init__(
        self,
        shape: Sequence[int],
        num_levels: int = 2,
        hidden_channels: int = 64,
        num_layers: int = 7,
        head: str = "auto",
        num_mixtures: int = 10,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        output_channels: int | None = None,
        sampler: str = "cached",
    ) -> None:
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and at least 3, got {kernel_size}")
        self.kernel_size = kernel_size
        super().__init__(
            shape,
            num_levels,
            hidden_channels,
            num_layers,
            head,
            num_mixtures,
            first_kernel_size,
            output_channels,
            sampler,
        )

    def _make_layer(self, hidden_channels: int, num_groups: int, first: bool) -> nn.Module:
        return RowLSTMLayer(hidden_channels, self.kernel_size, num_groups)

    _stepper = RowLSTMStepper


class DiagonalBiLSTM(_PixelRNN):
    """PixelRNN with Diagonal BiLSTM layers (the whole context above and to the left per layer).

    ``forward(x)`` returns per-sub-pixel parameters [B, C, H, W, P] for the chosen head
    (``"auto"``: bernoulli for binary data, categorical otherwise; or ``"logistic_mixture"``).
    ``sampler``: ``"cached"`` (incremental, ``DiagonalBiLSTMStepper``) or ``"naive"`` (a full
    pass per sub-pixel); identical samples.
    """

    capabilities = Capabilities()  # K levels, any channels

    def __init__(
        self,
        shape: Sequence[int],
        num_levels: int = 2,
        hidden_channels: int = 64,
        num_layers: int = 7,
        head: str = "auto",
        num_mixtures: int = 10,
        first_kernel_size: int = 7,
        output_channels: int | None = None,
        sampler: str = "cached",
    ) -> None:
        super().__init__(
            shape,
            num_levels,
            hidden_channels,
            num_layers,
            head,
            num_mixtures,
            first_kernel_size,
            output_channels,
            sampler,
        )

    def _make_layer(self, hidden_channels: int, num_groups: int, first: bool) -> nn.Module:
        return DiagonalBiLSTMLayer(hidden_channels, num_groups, num_groups if first else 0)

    _stepper = DiagonalBiLSTMStepper
