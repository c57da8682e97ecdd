"""Crash-safe file writing, hashing, and verified cache folders.

Writes.  Everything taxbench writes (result files, per-example records, converted models,
fitted projections, checkpoints, scorer heads) lands in a temporary sibling
``.<name>.<pid>@<host>.<token>.tmp`` and is renamed into place only when complete, so a killed
run never leaves a partial file where a finished one is expected; the temp a killed writer left
is deleted by the next write of that file (``clean_stale_temps``).  Temp files and folders are
created with mode 0666 / 0777 less the process umask (what a plain ``open``/``mkdir`` gives),
so a result or cache folder on a shared cluster disk is as readable as the user's umask allows.

Cached artifacts (``cached_dir``): a folder that is a deterministic function of its key
(a GGUF model converted to safetensors, a fine-tuned checkpoint, an INLP/SentenceDebias
projection, the embedding_lr scorer head).

* Build: ``build(tmp)`` fills a temp sibling; ``taxbench_manifest.json`` (size and sha256 of
  every other file, recursively) is written last; every file and folder in it gets the umask's
  mode (some writers, safetensors among them, create 0600 files); the folder is renamed onto
  ``target``.
* Reuse: the manifest is verified first: every listed file present with its size and sha256,
  no unlisted file.  This reads every byte (about 1 s per 500 MB).
* Policy on a failed verification (manifest missing, unreadable or malformed; a file missing,
  extra, truncated or with another sha256): **rebuild**, with a WARNING naming the artifact, the
  file and the reason; the bad folder is moved to a temp sibling and deleted first.  A rebuild
  gives the same artifact (it is a function of its key), and one corrupt cache entry must not
  stop every job of a multirun.  Artifacts written before manifests existed are rebuilt once.
* Concurrency: builders of one artifact serialise on ``fcntl.flock`` of ``<target>.lock``
  (deleted by its holder when done; Linux NFS clients map flock to POSIX locks, so this holds
  across the nodes of a cluster).  The second builder waits (logged), then finds and verifies the first's
  folder and builds nothing.  The rename is idempotent: should ``target`` appear anyway (a
  filesystem without locks), the loser deletes its temp folder and uses the winner's.
* Stale temps: before each build, under the lock, temp siblings of that artifact left by a
  killed writer are deleted (logged): those whose PID is gone on this host, and those older
  than ``STALE_AFTER_S`` (writers on other hosts, whose PID cannot be checked).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)
MANIFEST = "taxbench_manifest.json"
STALE_AFTER_S = 6 * 3600  # a temp sibling older than this is stale whatever its writer (longest plausible job)
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_TEMP = re.compile(r"\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[0-9a-f]+\.tmp$")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of a JSON-serialisable object, independent of dict order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# ------------------------------------------------------------------ temp siblings
def temp_sibling(target: Path) -> Path:
    """A fresh temp name beside ``target``: ``.<name>.<pid>@<host>.<token>.tmp`` (not created)."""
    return target.parent / f".{target.name}.{os.getpid()}@{_HOST}.{secrets.token_hex(4)}.tmp"


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _honour_umask(folder: Path) -> None:
    """chmod ``folder`` and everything in it to 0777 / 0666 less the umask (writers such as
    safetensors create 0600 files whatever the umask)."""
    mask = _umask()
    for p in [folder, *folder.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _is_stale(tmp: Path, now: float) -> bool:
    try:
        age = now - tmp.lstat().st_mtime
    except FileNotFoundError:
        return False
    if age > STALE_AFTER_S:
        return True
    m = _TEMP.search(tmp.name)
    if m is None:  # an older naming scheme: only its age tells
        return False
    return m["host"] == _HOST and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"]))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_stale_temps(target: Path) -> list[Path]:
    """Delete the stale temp siblings ``.<name>.*.tmp`` of ``target`` (module docstring); returns them."""
    now = time.time()
    stale = [p for p in Path(target).parent.glob(f".{glob.escape(Path(target).name)}.*.tmp") if _is_stale(p, now)]
    for p in stale:
        log.info("removing stale temp %s left by an interrupted writer", p)
        _remove(p)
    return stale


# ------------------------------------------------------------------ single files
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp sibling, fsync, rename onto ``path``; stale temps of ``path`` go first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    tmp = temp_sibling(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode less the umask
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n").encode())


# ------------------------------------------------------------------ manifests
def _files(folder: Path) -> dict[str, Path]:
    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
    files.pop(MANIFEST, None)
    return files


def write_manifest(folder: Path) -> None:
    """Record size and sha256 of every file under ``folder`` in ``folder/taxbench_manifest.json``."""
    files = {rel: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for rel, p in _files(folder).items()}
    atomic_write_json(folder / MANIFEST, {"manifest_version": 1, "files": files})


def verify_manifest(folder: Path) -> str | None:
    """None when ``folder`` matches its manifest, else the reason (naming the file) it does not."""
    manifest = folder / MANIFEST
    try:
        listed = json.loads(manifest.read_text())["files"]
        if not isinstance(listed, dict) or not all(isinstance(v, dict) for v in listed.values()):
            raise TypeError
    except FileNotFoundError:
        return f"{manifest} is missing"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{manifest} is unreadable or malformed"
    present = _files(folder)
    extra = sorted(set(present) - set(listed))
    if extra:
        return f"{present[extra[0]]} is not in the manifest"
    for rel, entry in listed.items():
        path = folder / rel
        if rel not in present:
            return f"{path} is missing"
        if path.stat().st_size != entry.get("bytes"):
            return f"{path} has {path.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
        if sha256_file(path) != entry.get("sha256"):
            return f"{path} does not match its sha256 in the manifest"
    return None


# ------------------------------------------------------------------ cached folders
@contextlib.contextmanager
def artifact_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``<target>.lock`` (waiting, logged, if another process
    holds it).  The holder deletes the lock file before releasing it; a waiter that then holds a
    lock on a deleted file retries on the path's current file, so no two processes ever hold it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.parent / f"{target.name}.lock"
    waited = False
    while True:
        handle = open(path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not waited:
                log.info("waiting for another process building %s", target)
                waited = True
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()  # the previous holder deleted this file: lock the path's new one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        handle.close()  # releases the lock


def _commit(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target``; if ``target`` exists already, keep it and delete ``tmp``."""
    try:
        os.rename(tmp, target)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not target.is_dir():
            raise
        log.info("%s was written by another process meanwhile; using it", target)
        shutil.rmtree(tmp, ignore_errors=True)


def cached_dir(target: Path, build: Callable[[Path], None], what: str) -> Path:
    """``target``, verified against its manifest; built first by ``build(tmp)`` (which fills the
    empty folder ``tmp``) when it is missing or fails verification (module docstring: policy,
    locking, stale temps).  ``what`` names the artifact in log lines ("fitted projection")."""
    target = Path(target)
    if target.exists() and verify_manifest(target) is None:
        log.info("reusing verified %s %s", what, target)
        return target
    with artifact_lock(target):
        if target.exists():
            problem = verify_manifest(target)
            if problem is None:  # built by another process while this one waited
                log.info("reusing verified %s %s", what, target)
                return target
            log.warning("cached %s %s failed verification (%s): deleting and rebuilding it", what, target, problem)
            trash = temp_sibling(target)
            os.rename(target, trash)
            _remove(trash)
        clean_stale_temps(target)
        tmp = temp_sibling(target)
        os.mkdir(tmp, 0o777)  # mode less the umask
        try:
            build(tmp)
            write_manifest(tmp)
            _honour_umask(tmp)
            _commit(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target
