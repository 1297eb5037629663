"""argen: autoregressive generative models on Lightning, Hydra and W&B.

The packages are layers; an import runs down the layers, or across inside one, never up
(``tests/test_layering.py`` fails on one that does, and on any import cycle):

1. ``argen.core``: atomic record writes, the error types users see as one line;
2. ``argen.models`` (pure ``nn.Module``s) and ``argen.data`` (datasets and DataModules);
3. ``argen.modules``: the LightningModules, their optimizers and grouped steps;
4. ``argen.training``: the run recipe (``run``), budgets, checkpoints, callbacks, the summary;
5. ``argen.report`` (comparison, results page, figures) and ``argen.inspect`` (the lecture's
   pictures of trained models);
6. the command-line entry points ``argen.compare``, ``argen.evaluate``, ``argen.sample``.
"""

__version__ = "0.1.0"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("argen.core",),
    ("argen.models", "argen.data"),
    ("argen.modules",),
    ("argen.training",),
    ("argen.report", "argen.inspect"),
    ("argen.compare", "argen.evaluate", "argen.sample"),
)
