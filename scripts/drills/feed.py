"""The users feed from the client side, for the feed drill: Server-Sent Events
watchers (GET /users/events) that resume with Last-Event-ID the way a
browser's EventSource does, and a writer whose acknowledged creates, updates
and deletes are the events the feed must carry. Standard library only
(http.client in threads); everything on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException, HTTPResponse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import http  # noqa: E402


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    id: str
    user: dict | None

    @property
    def change(self) -> tuple[str, str]:
        return self.type, self.id


def stop_all() -> None:
    """Ends every watcher and writer still running (a drill that failed half-way)."""
    for w in list(Watcher.running):
        w.abort()
    for w in list(Writer.running):
        w.stop()


class Watcher(threading.Thread):
    """One SSE client following the feed until the created event of `stop_username`.

    It starts with `Last-Event-ID: <since>` and, whenever the stream ends or a
    connection attempt fails, reconnects after the server's `retry:` delay with
    `Last-Event-ID` set to the last seq it received, as EventSource does (which
    gives up on a non-200 answer; this client retries, and counts each one).
    `read_timeout` is how long a stream may stay silent (heartbeats included)
    before it counts as stalled and is reconnected.
    """

    running: list["Watcher"] = []

    def __init__(self, url: str, token: str, stop_username: str, since: int = 0, read_timeout: float = 45.0,
                 name: str = "watcher"):
        super().__init__(daemon=True, name=name)
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.token = token
        self.stop_username = stop_username
        self.last = since
        self.read_timeout = read_timeout
        self.retry = 2.0  # until the server says otherwise (its `retry:` field)
        self.events: list[Event] = []
        self.problems: list[str] = []  # malformed events, data/id disagreements
        self.outcomes: Counter[str] = Counter()  # "stream", "ended", "cut", "stalled", "conn-error", "status <n>"
        self.streams_opened = threading.Event()  # the first stream answered 200
        self.done = threading.Event()  # saw the stop event, or gave up (see `fatal`)
        self.fatal: str | None = None
        self._abort = threading.Event()

    def abort(self) -> None:
        self._abort.set()

    def start(self) -> "Watcher":
        Watcher.running.append(self)
        super().start()
        return self

    def run(self) -> None:
        try:
            while not self.done.is_set() and not self._abort.is_set():
                self._follow_once()
                if not self.done.is_set() and not self._abort.is_set():
                    self._abort.wait(self.retry)
        except Exception as exc:  # noqa: BLE001 - a bug here must not hang the drill
            self.fatal = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()
            if self in Watcher.running:
                Watcher.running.remove(self)

    def _follow_once(self) -> None:
        conn = HTTPConnection(self.host, self.port, timeout=self.read_timeout)
        try:
            conn.request("GET", "/users/events", headers={
                "Authorization": f"Bearer {self.token}", "Accept": "text/event-stream",
                "Last-Event-ID": str(self.last)})
            response = conn.getresponse()
        except (OSError, HTTPException):
            self.outcomes["conn-error"] += 1
            conn.close()
            return
        try:
            if response.status != 200:
                self.outcomes[f"status {response.status}"] += 1
                response.read()
                if response.status in (400, 401, 403, 410):  # nothing a retry changes
                    self.fatal = f"GET /users/events with Last-Event-ID {self.last}: {response.status}"
                    self.done.set()
                return
            self.outcomes["stream"] += 1
            self.streams_opened.set()
            self._read_stream(response)
        finally:
            conn.close()

    def _read_stream(self, response: HTTPResponse) -> None:
        fields: dict[str, str] = {}
        try:
            while True:
                raw = response.readline()
                if not raw:
                    self.outcomes["ended"] += 1  # the server finished the stream (e.g. shutting down)
                    return
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if fields:
                        if self._dispatch(fields):
                            self.done.set()
                            return
                        fields = {}
                    continue
                if line.startswith(":"):
                    continue  # a comment: heartbeat, or why the server ends the stream
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "retry" and value.isdigit():
                    self.retry = int(value) / 1000
                elif name == "data" and "data" in fields:
                    fields["data"] += "\n" + value
                else:
                    fields[name] = value
        except (TimeoutError, socket.timeout):
            self.outcomes["stalled"] += 1
        except (OSError, HTTPException, ValueError):
            self.outcomes["cut"] += 1  # the connection broke inside the stream

    def _dispatch(self, fields: dict[str, str]) -> bool:
        """Records one event; True when it is the stop event."""
        if "data" not in fields:
            return False
        try:
            data = json.loads(fields["data"])
            event = Event(int(data["seq"]), data["type"], data["id"], data.get("user"))
        except (ValueError, KeyError, TypeError) as exc:
            self.problems.append(f"unreadable event {fields}: {exc}")
            return False
        if fields.get("id") != str(event.seq) or fields.get("event") != event.type:
            self.problems.append(f"id/event fields {fields.get('id')}/{fields.get('event')} disagree with data {data}")
        self.events.append(event)
        self.last = event.seq  # what EventSource keeps as its last event ID
        return event.type == "user.created" and (event.user or {}).get("username") == self.stop_username


@dataclass
class Writes:
    """What the writer sent: acknowledged changes as the (type, id) of the event each must
    produce, with the user the answer carried; changes that got no answer may or may not
    have happened."""

    acknowledged: list[tuple[str, str, dict | None]] = field(default_factory=list)
    uncertain: list[tuple[str, str]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)


class Writer:
    """`workers` threads, each creating a user, renaming it, and deleting every third one,
    through `url` at about `rate` changes a second in all, until `stop()`."""

    running: list["Writer"] = []

    def __init__(self, url: str, token: str, rate: float, workers: int = 4):
        self.url, self.token, self.rate, self.workers = url, token, rate, workers
        self.writes = Writes()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._prefix = f"f{random.randrange(16**6):06x}"
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]

    def start(self) -> "Writer":
        Writer.running.append(self)
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> Writes:
        self._stop.set()
        for t in self._threads:
            t.join()
        if self in Writer.running:
            Writer.running.remove(self)
        return self.writes

    def acknowledged_count(self) -> int:
        with self._lock:
            return len(self.writes.acknowledged)

    def _send(self, kind: str, method: str, path: str, body: dict | None, user_id: str | None,
              expect: int) -> dict | None:
        headers = {"Authorization": f"Bearer {self.token}"}
        status, answer = http(method, self.url + path, body, headers, timeout=10)
        with self._lock:
            self.writes.outcomes[f"{method} {status}"] += 1
            if status == expect:
                user = json.loads(answer) if answer else None
                self.writes.acknowledged.append((kind, user_id or user["id"], user))
                return user or {}
            if status == 0 or status >= 500:  # no answer, or one that does not say nothing happened
                if user_id:
                    self.writes.uncertain.append((kind, user_id))
                else:  # a create without an answer: its id is unknown, its username is not
                    self.writes.uncertain.append((kind, f"username:{body['username']}"))
        return None

    def _work(self) -> None:
        interval = 3 * self.workers / self.rate  # three changes per round
        next_at = time.monotonic() + random.random() * interval
        while not self._stop.is_set():
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            next_at += interval
            n = next(self._counter)
            username = f"{self._prefix}{n}"
            created = self._send("user.created", "POST", "/users",
                                 {"name": f"Feed {n}", "username": username, "email": f"{username}@feed.example"}, None, 201)
            if not created:
                continue
            uid = created["id"]
            self._send("user.updated", "PATCH", f"/users/{uid}", {"name": f"Feed {n} renamed"}, uid, 200)
            if n % 3 == 0:
                self._send("user.deleted", "DELETE", f"/users/{uid}", None, uid, 204)


def create_user(url: str, token: str, username: str) -> tuple[int, dict | None]:
    status, body = http("POST", url + "/users", {"name": "Feed end", "username": username,
                                                 "email": f"{username}@feed.example"},
                        {"Authorization": f"Bearer {token}"})
    return status, (json.loads(body) if status == 201 else None)


def stop_username() -> str:
    return "fend" + os.urandom(5).hex()


def gauge(metrics_text: str, name: str) -> float | None:
    """The value of an unlabelled gauge in a Prometheus text exposition."""
    for line in metrics_text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.split()[-1])
    return None


def feed_watchers(metrics_url: str) -> float:
    """userapi_feed_watchers of one process (0 before the first watcher registers it)."""
    status, body = http("GET", metrics_url, timeout=5)
    if status != 200:
        raise RuntimeError(f"GET {metrics_url}: {status}")
    return gauge(body.decode(), "userapi_feed_watchers") or 0.0


def check_watcher(events: list[Event], reference: list[Event]) -> str | None:
    """None when a watcher got exactly the reference events, once each, in order; else what differs."""
    if [e.seq for e in events] == [e.seq for e in reference]:
        if [e.change for e in events] != [e.change for e in reference]:
            return "same seqs as the reference read, but different events under them"
        return None
    seqs = [e.seq for e in events]
    counts = Counter(seqs)
    repeated = sorted(s for s, c in counts.items() if c > 1)
    missing = sorted({e.seq for e in reference} - set(seqs))
    extra = sorted(set(seqs) - {e.seq for e in reference})
    out_of_order = next((f"{a} before {b}" for a, b in zip(seqs, seqs[1:]) if b <= a), None)
    parts = [f"{len(events)} events vs {len(reference)} in the reference read"]
    if repeated:
        parts.append(f"repeated seqs {repeated[:10]}{'...' if len(repeated) > 10 else ''} ({len(repeated)})")
    if missing:
        parts.append(f"missing seqs {missing[:10]}{'...' if len(missing) > 10 else ''} ({len(missing)})")
    if extra:
        parts.append(f"seqs not in the reference {extra[:10]}")
    if out_of_order:
        parts.append(f"out of order: {out_of_order}")
    return "; ".join(parts)


def check_against_writes(reference: list[Event], writes: Writes, stop_event: tuple[str, str]) -> list[str]:
    """The reference read holds one event per acknowledged change (with the user the write
    answered), nothing else but the stop event and changes that got no answer."""
    problems = []
    seqs = [e.seq for e in reference]
    if seqs != sorted(set(seqs)):
        problems.append("the reference read itself repeats or reorders seqs")
    gaps = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]
    if gaps:  # PostgreSQL hands seqs out from one counter row in the write's transaction: no holes
        problems.append(f"holes in the seqs of the reference read: {gaps[:5]}")
    by_change: dict[tuple[str, str], list[Event]] = {}
    for e in reference:
        by_change.setdefault(e.change, []).append(e)
    for kind, uid, user in writes.acknowledged:
        got = by_change.get((kind, uid), [])
        if len(got) != 1:
            problems.append(f"acknowledged {kind} {uid}: {len(got)} events")
        elif user is not None and got[0].user != user:
            problems.append(f"acknowledged {kind} {uid}: the event's user {got[0].user} is not the answer's {user}")
    known = {(k, u) for k, u, _ in writes.acknowledged} | set(writes.uncertain) | {stop_event}
    uncertain_usernames = {u.removeprefix("username:") for k, u in writes.uncertain if u.startswith("username:")}
    for e in reference:
        if e.change in known:
            continue
        if e.type == "user.created" and (e.user or {}).get("username") in uncertain_usernames:
            continue
        problems.append(f"event {e.seq} {e.type} {e.id} matches no write")
    return problems
