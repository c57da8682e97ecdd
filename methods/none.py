"""The no-op baseline: the model as loaded, which every other method is compared with."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bench.engine.hf_lm import HFScoringLM
from bench.api import LoadedModel
from bench.api import Debiased, MethodContext


@dataclass
class NoMethod:
    name: ClassVar[str] = "none"

    def prepare(self, loaded: LoadedModel, ctx: MethodContext) -> Debiased:
        return Debiased(HFScoringLM(loaded))
