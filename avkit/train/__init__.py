"""Training: configs, tasks, checkpoints and the engine (``avkit train``)."""

from avkit.train.config import DistillConfig, LossConfig, OptimConfig, TrainConfig
from avkit.train.engine import RunResult, train, train_or_reuse

__all__ = ["DistillConfig", "LossConfig", "OptimConfig", "RunResult", "TrainConfig", "train", "train_or_reuse"]
