"""Benchmark data: the declared files (``files.json``), the data root that verifies and fetches
them (``registry``), and the readers that name the file and line of a bad row (``readers``)."""
from bench.data.readers import jsonl_rows, read_csv, read_json, read_jsonl, read_lines
from bench.data.registry import (MANIFEST, DataFile, DataRoot, data_manifest_digest, default_cache_dir, default_root,
                                 load_manifest)

__all__ = ["DataFile", "DataRoot", "MANIFEST", "data_manifest_digest", "default_cache_dir", "default_root", "jsonl_rows", "load_manifest", "read_csv",
           "read_json", "read_jsonl", "read_lines"]
