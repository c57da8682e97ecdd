"""What benchmarks and methods may ask of the data root: a verified local path per declared
file, the checksums of the files read so far (recorded in every result file), and a cache folder."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class DataSource(Protocol):
    cache_dir: Path  # where data derived from the files (e.g. a scorer trained on them) is cached, by content

    def path(self, rel: str) -> Path:
        """Local, checksum-verified path of the declared file ``rel`` (relative to the data root)."""
        ...

    def checksums(self) -> dict[str, str]:
        """sha256 of every file read so far, by relative path."""
        ...
