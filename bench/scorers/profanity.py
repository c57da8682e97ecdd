"""The fast offline scorer: alt-profanity-check (TF-IDF + linear SVM calibrated to a
probability; fast, catches profanity and explicit insults, misses implicit hate)."""
from __future__ import annotations

from importlib.metadata import version
from typing import Sequence


class ProfanityCheckScorer:
    key = "profanity_check"

    def __init__(self) -> None:
        from profanity_check import predict_prob

        self._predict = predict_prob
        self.info = {"scorer": self.key, "package": f"alt-profanity-check=={version('alt-profanity-check')}"}

    def score(self, texts: Sequence[str]) -> list[float]:
        return [float(p) for p in self._predict(list(texts))]
