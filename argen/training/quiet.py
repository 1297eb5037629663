"""Keep a run's terminal output to what a researcher reads: each message once, no library tips.

Hydra's root logger and Lightning's own handler both printed every INFO line; Lightning adds
advertising tips, torch's pytree a deprecation warning from inside Lightning, W&B a warning about
an argument Lightning passes. Everything still goes to the run's log file.
"""

from __future__ import annotations

import logging
import warnings

# Messages that tell the user nothing about their run.
NOISE = (
    "💡 Tip:",  # Lightning's litlogger / litmodels advertisements
)
# Libraries that attach console handlers of their own on import.
LIBRARY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "torchmetrics")
WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\).*",  # torch deprecation raised inside Lightning
    r".*does not have many workers.*",  # in-memory datasets need no loader workers
    r".*smaller than the logging interval.*",  # tiny quick runs
)


class DropNoise(logging.Filter):
    """Logging filter (Hydra's ``job_logging`` attaches it to its handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not message.startswith(NOISE)


def quiet_libraries() -> None:
    """Route Lightning's messages through the root logger only (Hydra prints and files them once)
    and silence the known warnings."""
    routed = bool(logging.getLogger().handlers)  # Hydra configured logging: use its handlers
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if routed:
                logger.removeHandler(handler)
            elif not any(isinstance(f, DropNoise) for f in handler.filters):
                handler.addFilter(DropNoise())  # a CLI without Hydra: keep the handler, drop tips
        if routed:
            logger.propagate = True
    for pattern in WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    # A line the log file cannot take (a full disk) must not print a traceback per message: the
    # run ends with its own one-line disk-full error instead.
    logging.raiseExceptions = False
