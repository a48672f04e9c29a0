"""CPython edges for the ports: httpx for outbound HTTP, a folder for R2 (the env file reader: relay_tools.envfile)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from relay.core.ports import HttpRequest, HttpResponse
from relay_tools.envfile import load_env, read_env_file, readable_by_others

__all__ = ["FolderBlobs", "HttpxClient", "load_env", "read_env_file", "readable_by_others"]


class HttpxClient:
    def __init__(self) -> None:
        self.client = httpx.AsyncClient(follow_redirects=False)

    async def send(self, request: HttpRequest) -> HttpResponse:
        try:
            response = await self.client.request(
                request.method, request.url, headers=request.headers, content=request.body, timeout=request.timeout)
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"no answer within {request.timeout} s") from exc
        except httpx.TransportError as exc:
            raise ConnectionError(type(exc).__name__) from exc
        return HttpResponse(response.status_code, dict(response.headers), response.content)

    async def aclose(self) -> None:
        await self.client.aclose()


def private_dir(path: str | Path) -> None:
    """``path`` as a directory, each folder this creates readable by this user only (0700).

    The local ledger and delivery logs hold unhashed IP addresses and user agents (the bridge's), so
    ``.relay/`` and everything under it is created private. Folders that already exist are left as
    they are: ``--db /tmp/x.db`` must not change ``/tmp``.
    """
    path = Path(path)
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass


def private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, a new file created readable by this user only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


class FolderBlobs:
    """R2 on disk: the object key is the path under ``root``; folders 0700, files 0600 (``private_dir``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    async def put(self, key: str, data: bytes, content_type: str = "application/x-ndjson") -> None:
        path = self.root / key
        private_dir(path.parent)
        private_file(path, data)

    async def get(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    async def list(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix))
