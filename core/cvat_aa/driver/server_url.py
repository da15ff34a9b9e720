"""Server addresses as cvat-aa keeps and shows them: normalised, and never with credentials.

A user may reach one server as ``http://localhost:8080/``, ``http://127.0.0.1:8080`` or
``HTTP://user:secret@localhost:8080``. Journals and locks must treat those as one server (a run
started one way and resumed another must find its journal, and two runs must see each other),
and nothing cvat-aa writes or prints may carry the ``user:secret@`` part.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

__all__ = ["normalize_server_url", "redact_url"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split(url: str) -> urllib.parse.SplitResult:
    text = url.strip()
    if "://" not in text:
        text = "https://" + text  # what cvat-sdk assumes for a bare host
    return urllib.parse.urlsplit(text)


def redact_url(url: str) -> str:
    """``url`` without the user name and password it may carry."""
    parts = _split(url) if "://" in url else None
    if parts is None or "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def normalize_server_url(url: str) -> str:
    """One spelling per server: scheme and host in lower case, no credentials, no default port,
    no trailing slash, and every loopback name (``localhost``, ``127.0.0.1``, ``::1``) as
    ``127.0.0.1``."""
    parts = _split(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if _is_loopback(host):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urllib.parse.urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))
