"""CPython edges for the ports: httpx for outbound HTTP, a folder for R2, an env file reader."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import httpx

from relay.core.errors import ConfigError
from relay.core.ports import HttpRequest, HttpResponse


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


def read_env_file(path: str | Path) -> dict[str, str]:
    """``.env`` syntax: ``KEY=value`` lines, ``#`` comments, optional ``export`` and quotes.

    An empty value means "not set" and is left out: a copy of ``.env.example`` is full of blank
    placeholders, and ``LIGHTSPEED_API_URL=`` must not blank a value exported in the shell.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"env file {file} not found; copy .env.example to {file} and fill it in")
    values: dict[str, str] = {}
    for number, line in enumerate(file.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().replace("_", "").isalnum():
            raise ConfigError(f"{file}:{number} is not KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if value:
            values[key.strip()] = value
        else:
            values.pop(key.strip(), None)
    return values


def readable_by_others(path: str | Path) -> bool:
    """True when group or other may read the file: a secrets file should be ``chmod 600``."""
    try:
        return bool(Path(path).stat().st_mode & 0o044)
    except OSError:
        return False


def load_env(env_file: str | Path | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment overlaid by the env file, as docs/ARCHITECTURE.md says."""
    env = dict(os.environ if base is None else base)
    if env_file is not None:
        env.update(read_env_file(env_file))
    return env
