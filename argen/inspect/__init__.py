"""Pictures of what a trained autoregressive model conditions on and where it is surprised.

``python -m argen.inspect CKPT --out DIR`` draws them from a checkpoint; the
``argen.inspect.callback.InspectLogger`` callback logs the same views to W&B at the end of a run.

The computations are pure functions on the models of ``argen.models`` (no Lightning):

* ``conditionals``: every model's per-dimension conditional log-probabilities and ordering;
* ``dependency``: exact-gradient dependency maps and the receptive field's growth by layer;
* ``masks``: MADE's masks, degrees and input-output connectivity;
* ``text``: per-character probabilities of a string under a character model;
* ``surprise``: per-sub-pixel negative log-likelihood of images.

``plots`` turns their results into matplotlib figures; ``views`` ties both together for the CLI
and the callback.
"""
