"""The training recipe and its machinery: ``run`` (what train.py calls), budgets and FLOPs,
checkpoints, config checks, the run directory guard, loggers, the record of a run
(``summary``) and the Lightning callbacks (``training.callbacks``). Above ``argen.modules``."""
