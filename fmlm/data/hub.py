"""Is the Hugging Face hub reachable? A quick probe so offline machines fail in a second, not after retries.

``transformers`` and ``datasets`` retry an unreachable hub for 25-50 s and then raise a many-line
error. Callers try the local cache first and, when that misses, call ``hub_reachable`` before going
online, so an offline machine gets one clear line at once.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

HUB_PROBE_TIMEOUT_S = 3.0  # a reachable hub answers a TCP connect well within this; offline DNS fails at once
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def hub_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """True unless the hub is switched off (HF_HUB_OFFLINE) or a direct TCP connect to it fails.

    Behind a proxy a direct connect proves nothing, so the probe answers True and lets the library try.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return True
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
    except OSError:
        return False
    return True
