"""What a model folder holds, local or on S3, read cheaply (names, sizes and versions; no byte of content):
its listing and the fingerprint of it that says when a folder changed. Below every reader of checkpoints."""

from __future__ import annotations

import hashlib
import json

from compute.storage import filesystem

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")  # one of them makes a tokenizer


def fresh(url: str):
    """The filesystem of `url`, its listing cache dropped, and `url` without a trailing slash."""
    fs = filesystem(url)
    fs.invalidate_cache()  # a sensor tick must see what is there now, not a cached listing
    return fs, url.rstrip("/")


def listing(path: str) -> dict[str, tuple[int, str]]:
    """Every file under a model folder: relative name -> (size, version: mtime, or the object's ETag on S3).
    Cheap: no byte is read."""
    fs, root = fresh(str(path))
    prefix = len(fs._strip_protocol(root).rstrip("/")) + 1
    return {name[prefix:]: (int(info["size"]), str(info.get("ETag") or info.get("mtime") or info.get("LastModified")))
            for name, info in sorted(fs.find(root, detail=True).items())}


def listing_fingerprint(path: str) -> str:
    return hashlib.sha256(json.dumps(sorted(listing(path).items())).encode()).hexdigest()[:16]


