"""argen: autoregressive generative models on Lightning, Hydra and W&B."""

__version__ = "0.1.0"
