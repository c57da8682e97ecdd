"""``nc``: NC3 on plain fine-tuning (not a configuration of the paper).  Causal-LM loss on the
corpus + nc3_weight x L_NC3 (``methods.finetune.nc3``), no augmentation.  Xu et al. always add
NC3 to a debiasing method (MABEL, ADEPT, ASE, BEC); the paper's configurations here are
``cda_nc3`` and ``contrastive_nc3``.  This row isolates the regularizer against ``finetune``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bench.errors import ConfigError
from methods.finetune.lm import LMFineTuning


@dataclass
class NC(LMFineTuning):
    """Causal-LM fine-tuning + nc3_weight x L_NC3."""

    name_base: ClassVar[str] = "nc"
    nc3_weight: float = 10.0  # lambda of L_NC3 (the release used 5 to 100)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nc3_weight <= 0:
            raise ConfigError(f"method.nc3_weight must be > 0 for method=nc, got {self.nc3_weight}")

    @property
    def name(self) -> str:
        return self.name_base
