"""Whether the Hugging Face Hub can be reached, asked once per process.

From a machine that cannot resolve the Hub's host, ``from_pretrained`` of a Hub name retried for about a minute (five
backoffs) before failing, unless ``HF_HUB_OFFLINE`` was set. Where the host does not resolve, a named model is read
from the local cache only (``local_files_only``): found there, it loads; not found, the error comes at once and says
the Hub could not be reached.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import constants

_PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


@functools.lru_cache(maxsize=1)
def hub_unreachable() -> bool:
    """The Hub's host does not resolve here (no network, or none but a package mirror), and no proxy is set to
    reach it through."""
    if constants.HF_HUB_OFFLINE:  # the libraries read the cache only already
        return False
    if any(os.environ.get(k) for k in _PROXIES):  # a proxy resolves the Hub's host for us (cluster nodes)
        return False
    try:
        socket.getaddrinfo(urlparse(constants.ENDPOINT).hostname, 443)
    except OSError:
        return True
    return False


def cache_only(name: str | Path) -> dict:
    """``from_pretrained``'s keywords for ``name``: the local cache only, where it is a Hub name the Hub cannot serve."""
    return {"local_files_only": True} if not Path(str(name)).is_dir() and hub_unreachable() else {}
