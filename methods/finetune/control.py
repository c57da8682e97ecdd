"""``finetune``: the control of every fine-tuning method.  The same corpus, budget, trainer and
checkpointing as CDA, Dropout and NC (``LMFineTuning``) with no debiasing ingredient: continued
causal-LM training on the corpus chunks.  A fine-tuning method's effect is its delta against this
row; its delta against ``none`` also holds the effect of fine-tuning itself."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bench.errors import ConfigError
from methods.finetune.lm import LMFineTuning


@dataclass
class FineTune(LMFineTuning):
    """Plain continued causal-LM training (no augmentation, no dropout change, no NC3)."""

    name_base: ClassVar[str] = "finetune"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nc3_weight > 0:
            raise ConfigError("method=finetune is the control without a debiasing ingredient; "
                              "for NC3 on plain fine-tuning use method=nc")
