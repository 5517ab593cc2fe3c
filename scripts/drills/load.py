"""Steady mixed load through the balancer: reads and authenticated writes at a
bounded rate, each request recorded (status, latency, error kind), each
acknowledged write remembered so the drill can check it survived.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import http  # noqa: E402


@dataclass
class Record:
    at: float
    kind: str  # "read", "write", "status"
    outcome: str  # "ok", "5xx", "4xx", "conn-error", "timeout"
    status: int
    latency: float
    body: bytes = b""


@dataclass
class LoadResult:
    records: list[Record] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)  # id -> username
    versions_seen: list[tuple[float, str]] = field(default_factory=list)

    def summary(self) -> dict:
        outcomes = Counter(r.outcome for r in self.records)
        latencies = sorted(r.latency for r in self.records if r.outcome == "ok")
        p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else 0.0
        return {
            "sent": len(self.records),
            "ok": outcomes.get("ok", 0),
            "failed": {k: v for k, v in outcomes.items() if k != "ok"},
            "p99_ms": round(p99 * 1000, 1),
        }


async def _request(reader, writer, method: str, path: str, headers: dict[str, str], body: bytes | None,
                   timeout: float) -> tuple[int, bytes, bool]:
    lines = [f"{method} {path} HTTP/1.1", "Host: drill"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    writer.write(data)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status = int(head.split(b" ", 2)[1])
    length = 0
    close = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"connection" and value.strip().lower() == b"close":
            close = True
    payload = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
    return status, payload, close


class Load:
    """Runs in its own thread with its own event loop until `stop()` (or `stop_all()`)."""

    running: list["Load"] = []

    @classmethod
    def stop_all(cls) -> None:
        while cls.running:
            cls.running[-1].stop()

    def __init__(self, url: str, token: str, rate: float, workers: int = 16, write_share: float = 0.25,
                 timeout: float = 10.0):
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.token = token
        self.rate = rate
        self.workers = workers
        self.write_share = write_share
        self.timeout = timeout
        self.result = LoadResult()
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._known_ids: list[str] = []
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._prefix = f"d{random.randrange(16**6):06x}"

    def start(self) -> "Load":
        self._thread.start()
        Load.running.append(self)
        return self

    def stop(self) -> LoadResult:
        self._stop.set()
        self._thread.join()
        if self in Load.running:
            Load.running.remove(self)
        return self.result

    async def _main(self) -> None:
        interval = self.workers / self.rate
        await asyncio.gather(*(self._worker(i, interval) for i in range(self.workers)))

    async def _worker(self, index: int, interval: float) -> None:
        await asyncio.sleep(interval * index / self.workers)
        reader = writer = None
        next_at = time.monotonic()
        while not self._stop.is_set():
            next_at += interval
            if reader is None:
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 2)
                except (OSError, asyncio.TimeoutError):
                    self._record("read", "conn-error", 0, 0.0)
                    reader = writer = None
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    continue
            n = next(self._counter)
            if n % 10 == 0:
                kind, method, path, body = "status", "GET", "/version", None
            elif random.random() < self.write_share or not self._known_ids:
                username = f"{self._prefix}{n}"
                kind, method, path = "write", "POST", "/users"
                body = json.dumps({"name": f"Drill {n}", "username": username,
                                   "email": f"{username}@drill.example"}).encode()
            else:
                kind, method, body = "read", "GET", None
                path = f"/users/{random.choice(self._known_ids)}" if random.random() < 0.7 else "/users?limit=20"
            # The token on every request: reads need it too when the app protects them.
            headers = {"Accept": "application/json", "Authorization": f"Bearer {self.token}"}
            if kind == "write":
                headers["Content-Type"] = "application/json"
            start = time.monotonic()
            try:
                status, payload, close = await _request(reader, writer, method, path, headers, body, self.timeout)
            except asyncio.TimeoutError:
                self._record(kind, "timeout", 0, time.monotonic() - start)
                writer.close()
                reader = writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                self._record(kind, "conn-error", 0, time.monotonic() - start)
                if writer:
                    writer.close()
                reader = writer = None
            else:
                latency = time.monotonic() - start
                outcome = "ok" if status < 400 else ("5xx" if status >= 500 else "4xx")
                self._record(kind, outcome, status, latency)
                if kind == "write" and status == 201:
                    created = json.loads(payload)
                    self.result.acknowledged[created["id"]] = created["username"]
                    self._known_ids.append(created["id"])
                if kind == "status" and status == 200:
                    self.result.versions_seen.append((time.monotonic(), str(json.loads(payload).get("version"))))
                if close:
                    writer.close()
                    reader = writer = None
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if writer:
            writer.close()

    def _record(self, kind: str, outcome: str, status: int, latency: float) -> None:
        self.result.records.append(Record(time.monotonic(), kind, outcome, status, latency))


def verify_acknowledged(url: str, acknowledged: dict[str, str], token: str) -> tuple[int, list[str]]:
    """Reads back every acknowledged write; returns (found, missing ids)."""
    missing = []
    for user_id, username in acknowledged.items():
        status, body = http("GET", f"{url}/users/{user_id}", headers={"Authorization": f"Bearer {token}"})
        try:
            if status != 200 or json.loads(body)["username"] != username:
                missing.append(user_id)
        except (ValueError, KeyError):
            missing.append(user_id)
    return len(acknowledged) - len(missing), missing
