"""From result files to evidence: bootstrap statistics (``bootstrap``), the leaderboard (``leaderboard``), the figures (``plots``)."""
