"""Teacher -> student distillation through KL divergence, as in SoundNet (Aytar et al. 2016)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class DistillationKLLoss(nn.Module):
    """``T² · KL(softmax(t / T) ‖ softmax(s / T))``, averaged over the batch (Hinton et al. 2015).

    The ``T²`` factor keeps gradient sizes comparable across temperatures.

    Shapes: ``student_logits (B, C)``, ``teacher_logits (B, C)`` -> scalar.
    """

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        t = self.temperature
        log_p_student = F.log_softmax(student_logits / t, dim=-1)
        log_p_teacher = F.log_softmax(teacher_logits.detach() / t, dim=-1)
        return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * t * t
