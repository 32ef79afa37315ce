"""Training: the run config, the optimiser and the engine (``avkit train``)."""

from avkit.train.config import DataConfig, OptimConfig, RunConfig, load_run_config
from avkit.train.engine import RunResult, train, train_or_reuse, with_labels

__all__ = ["DataConfig", "OptimConfig", "RunConfig", "RunResult", "load_run_config", "train", "train_or_reuse", "with_labels"]
