"""Which machine a clip was built on: on a Ray cluster, the host and the Ray node (the report lists them)."""

from __future__ import annotations

import socket
import sys

LOCAL = "local"


def current_node() -> str:
    """``local`` outside Ray (one machine: its name is not worth publishing with the report);
    ``host/<first 12 hex digits of the Ray node id>`` in a process connected to Ray (two Ray nodes may share
    a host). Ray is never imported here: only looked at when this process already uses it."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        try:
            return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}"
        except Exception:  # connected, but no node id to tell (a Ray client): the host alone
            return socket.gethostname()
    return LOCAL
