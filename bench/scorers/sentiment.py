"""Sentiment of generated text: the VADER compound score (Hutto & Gilbert 2014), the tool
BOLD (Dhamala et al. 2021) scores generations with.  Compound is a normalised sum of lexicon
valences in [-1, 1] (-1 most negative, 0 neutral)."""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from bench.errors import ConfigError


@lru_cache(maxsize=1)
def _analyzer():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise ConfigError("sentiment scoring needs vaderSentiment: pip install vaderSentiment") from None
    return SentimentIntensityAnalyzer()


def vader_compound(texts: Sequence[str]) -> list[float]:
    """VADER compound score of each text, in order (a blank text scores 0.0)."""
    analyzer = _analyzer()
    return [float(analyzer.polarity_scores(t)["compound"]) if t.strip() else 0.0 for t in texts]
