"""CPython edges for the ports: httpx for outbound HTTP, a folder for R2 (the env file reader: relay_tools.envfile)."""

from __future__ import annotations

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


class FolderBlobs:
    """R2 on disk: the object key is the path under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    async def put(self, key: str, data: bytes, content_type: str = "application/x-ndjson") -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    async def get(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    async def list(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix))
