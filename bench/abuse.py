"""The abuse scenario of issue 20, against two livehub processes on Redis, default limits on.

Phases, each ``--seconds`` long, in one run against the same servers:

1. ``quiet``: ``--honest`` honest clients (half signed in, half guests, from their own
   127.0.0.x addresses, ``--per-address`` to an address) in one room each post and
   vote once per ``--period`` seconds. Every post carries its send time; every honest
   client times each honest post until its ``msg`` arrives (ping-to-event).
2. ``abuse``: the same honest load, and meanwhile, each from an address of its own:
   (a) vote stuffing: fresh guest identities (a new connection and ``hello`` under a
   new name each) vote one question up, ``--stuffers`` at a time, for the whole phase;
   (b) post flooding: ``--flooders`` guest connections each post just inside its own
   connection's rate limit (1.9 a second); (c) ``--silent`` silent TCP connections from
   10 addresses (:func:`bench.silent.hold_silent`), opened again whenever the server
   has closed them.

Prints one JSON line: votes counted against attempted, posts accepted per minute, what
the silent connections met, and the honest clients' ping-to-event p50/p99/max and
refusals in each phase. Bounded in count and time (see ``main``), loopback only; the
honest clients and the abusers run in client processes of their own, so that neither
measures the other's harness. Every process started is stopped by pid.

    python -m bench.abuse                                   # 2 x 30 s, ~75 s in all
    python -m bench.abuse --seconds 3 --honest 10 --flooders 5 --silent 20   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import re
import secrets
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench.servers import SECRET, PrivateRedis, Server
from bench.silent import Silent, hold_silent, pct
from bench.wsclient import OP_TEXT, WSClient, connect

SUB = ["livehub.v1.json"]
HOST = "127.0.0.1"
STUFFER = "127.0.0.20"
FLOODER = "127.0.0.21"
SILENT = [f"127.0.0.{i}" for i in range(30, 40)]
HONEST_FIRST = 100  # honest clients come from 127.0.0.100 on
FLOOD_RATE = 1.9  # posts a second per flooding connection: just inside 20 per 10 s
# The limits under test, at the defaults of livehub.config (bench.servers turns them off).
LIMIT_FIELDS = {
    "LIVEHUB_RATE_LIMIT": "rate_limit",
    "LIVEHUB_GUEST_ADDRESS_RATE": "guest_address_rate",
    "LIVEHUB_GUEST_VOTES_PER_ADDRESS": "guest_votes_per_address",
    "LIVEHUB_GUEST_NAMES_PER_HOUR": "guest_names_per_hour",
    "LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS": "max_connections_per_address",
    "LIVEHUB_HEADER_TIMEOUT": "header_timeout",
    "LIVEHUB_HELLO_TIMEOUT": "hello_timeout",
}


def default_limits() -> dict[str, str]:
    from livehub.config import Config

    fields = Config.model_fields
    return {env: str(fields[name].default) for env, name in LIMIT_FIELDS.items()}


def token(name: str, sub: str, role: str = "participant") -> str:
    from livehub.auth import mint
    from livehub.roles import Role

    with warnings.catch_warnings():  # the bench secret is short: fine on loopback
        warnings.simplefilter("ignore")
        return mint(SECRET, name=name, role=Role(role), sub=sub, ttl=3600)


# --- one client connection (JSON codec over the harness's raw WebSocket client) --------


def _seen(fut: asyncio.Future[Any]) -> None:
    """A close after the caller stopped waiting fails a future no one awaits: fine."""
    if not fut.cancelled():
        fut.exception()


class Peer:
    """A joined connection: requests with ids answered by futures; other lines go to
    ``on_line`` (a text frame may hold several events, one JSON object per line)."""

    def __init__(self, on_line: Any = None) -> None:
        loop = asyncio.get_running_loop()
        self.welcome: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.welcome.add_done_callback(_seen)
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.on_line = on_line
        self.ws: WSClient | None = None
        self.ids = itertools.count(1)

    def on_message(self, payload: bytes, opcode: int) -> None:
        for line in payload.split(b"\n"):
            if not self.welcome.done():
                if b'"t":"welcome"' in line:
                    self.welcome.set_result(json.loads(line))
                elif b'"t":"error"' in line:
                    self.welcome.set_exception(ConnectionError(line[:200].decode()))
                continue
            if b'"t":"ok"' in line or b'"t":"error"' in line:
                answer = json.loads(line)
                fut = self.waiting.pop(answer.get("id") or "", None)
                if fut is not None and not fut.done():
                    fut.set_result(answer)
            elif self.on_line is not None:
                self.on_line(line)

    def on_close(self, code: int | None) -> None:
        if not self.welcome.done():
            self.welcome.set_exception(ConnectionError(f"closed {code} before welcome"))
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"closed {code}"))
        self.waiting.clear()

    async def join(self, port: int, room: str, source: str, hello: dict[str, Any],
                   timeout: float = 10.0) -> dict[str, Any]:
        self.ws = await connect(HOST, port, f"/ws/{room}", SUB, self.on_message,
                                timeout=timeout, local_addr=(source, 0),
                                on_close=self.on_close)
        self.ws.send(json.dumps({"t": "hello", **hello}).encode(), OP_TEXT)
        return await asyncio.wait_for(asyncio.shield(self.welcome), timeout)

    def send(self, frame: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        rid = f"r{next(self.ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_seen)
        self.waiting[rid] = fut
        assert self.ws is not None
        self.ws.send(json.dumps({**frame, "id": rid}).encode(), OP_TEXT)
        return fut

    async def request(self, frame: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.send(frame), timeout)

    def abort(self) -> None:
        if self.ws is not None:
            self.ws.abort()


def outcome(answer: dict[str, Any]) -> str:
    return "ok" if answer.get("t") == "ok" else str(answer.get("code"))


def tally(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def run_loop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency of livehub
        return asyncio.run(coro)
    return uvloop.run(coro)


# --- setup and the final count (the coordinator) --------------------------------------


async def setup(port: int, room: str, nonce: str, questions: int) -> dict[str, Any]:
    """A moderator asks the stuffing target and the questions honest clients vote on."""
    mod = Peer()
    await mod.join(port, room, "127.0.0.2",
                   {"token": token("Moderator", f"mod-{nonce}", "moderator")})
    target = (await mod.request({"t": "ask", "text": "Stuff me"}))["qid"]
    qids = [(await mod.request({"t": "ask", "text": f"Question {i}"}))["qid"]
            for i in range(questions)]
    mod.abort()
    return {"target": target, "qids": qids}


async def votes_on(port: int, room: str, qid: str, nonce: str) -> int | None:
    """The question's vote count as a newcomer's ``welcome`` tells it."""
    peer = Peer()
    welcome = await peer.join(port, room, "127.0.0.2",
                              {"token": token("Counter", f"count-{nonce}")})
    peer.abort()
    for q in welcome.get("questions", []):
        if q.get("qid") == qid:
            return int(q["votes"])
    return None


# --- the honest clients (a client process) --------------------------------------------


async def honest(cfg: dict[str, Any]) -> dict[str, Any]:
    port, room, nonce = cfg["port"], cfg["room"], cfg["nonce"]
    mark = re.compile(rb"~H" + nonce.encode() + rb"~(\d+)~")
    latencies: list[float] = []
    outcomes: dict[str, dict[str, int]] = {"post": {}, "vote": {}}
    lost = {"connect": 0, "closed": 0, "unanswered": 0}

    def on_line(line: bytes) -> None:
        if m := mark.search(line):
            latencies.append((time.time_ns() - int(m.group(1))) / 1e6)

    peers: list[Peer] = []
    sem = asyncio.Semaphore(50)

    async def join(i: int) -> None:
        source = f"127.0.0.{HONEST_FIRST + i // cfg['per_address']}"
        hello: dict[str, Any] = (
            {"token": token(f"Resident {i}", f"honest-{nonce}-{cfg['phase']}-{i}")}
            if i % 2 == 0 else {"name": f"Guest {i}"})
        peer = Peer(on_line)
        async with sem:
            try:
                await peer.join(port, room, source, hello)
                peers.append(peer)
            except (OSError, TimeoutError):
                lost["connect"] += 1
                peer.abort()

    await asyncio.gather(*(join(i) for i in range(cfg["honest"])))
    t0, end = cfg["t0"], cfg["t0"] + cfg["seconds"]
    late = max(0.0, time.time() - t0)
    period, qids = cfg["period"], cfg["qids"]

    async def act(i: int, peer: Peer) -> None:
        await asyncio.sleep(max(0.0, t0 - time.time()) + (i / len(peers)) * period)
        up = True
        while time.time() < end and peer.ws is not None and not peer.ws.closed:
            try:
                answer = await peer.request(
                    {"t": "post", "text": f"hello ~H{nonce}~{time.time_ns()}~"}, 5)
                tally(outcomes["post"], outcome(answer))
                await asyncio.sleep(period / 2)
                answer = await peer.request({"t": "vote", "qid": qids[i % len(qids)],
                                             "up": up}, 5)
                tally(outcomes["vote"], outcome(answer))
                up = not up
            except TimeoutError:
                lost["unanswered"] += 1
            except ConnectionError:
                break
            await asyncio.sleep(period / 2)

    await asyncio.gather(*(act(i, p) for i, p in enumerate(peers)))
    await asyncio.sleep(1.0)  # the last posts' events reach everyone
    lost["closed"] = sum(1 for p in peers if p.ws is None or p.ws.closed)
    for p in peers:
        p.abort()
    return {
        "clients": cfg["honest"], "connected": len(peers), "late_start_s": round(late, 2),
        "posts": outcomes["post"], "votes": outcomes["vote"], **lost,
        "events_timed": len(latencies),
        "ping_to_event_ms": {"p50": pct(latencies, 50), "p99": pct(latencies, 99),
                             "max": round(max(latencies), 2) if latencies else None},
    }


def honest_main(cfg: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = run_loop(honest(cfg))
    return result


# --- the abusers (another client process) ---------------------------------------------


async def stuff(cfg: dict[str, Any], end: float) -> dict[str, Any]:
    """Fresh guest identities from one address vote the target question up."""
    port, room, target = cfg["port"], cfg["room"], cfg["target"]
    names = itertools.count(1)
    counts = {"identities": 0, "hello_refused": 0, "votes_attempted": 0,
              "connect_failed": 0}
    votes: dict[str, int] = {}

    async def one_after_another() -> None:
        while time.time() < end:
            peer = Peer()
            try:
                await peer.join(port, room, STUFFER, {"name": f"Sock {next(names)}"}, 5)
            except ConnectionError:
                counts["hello_refused"] += 1
                peer.abort()
                continue
            except (OSError, TimeoutError):
                counts["connect_failed"] += 1
                peer.abort()
                await asyncio.sleep(0.05)
                continue
            counts["identities"] += 1
            counts["votes_attempted"] += 1
            try:
                tally(votes, outcome(await peer.request(
                    {"t": "vote", "qid": target, "up": True}, 5)))
            except (ConnectionError, TimeoutError) as exc:
                tally(votes, type(exc).__name__)
            peer.abort()

    await asyncio.gather(*(one_after_another() for _ in range(cfg["stuffers"])))
    return {**counts, "vote_answers": votes}


async def flood(cfg: dict[str, Any], end: float) -> dict[str, Any]:
    """Guest connections from one address, each inside its own rate limit, post."""
    port, room = cfg["port"], cfg["room"]
    answers: dict[str, int] = {}
    counts = {"connected": 0, "connect_failed": 0, "sent": 0, "closed": 0}

    async def one(i: int) -> None:
        peer = Peer()
        try:
            await peer.join(port, room, FLOODER, {"name": f"Flood {i}"})
        except (OSError, TimeoutError, ConnectionError):
            counts["connect_failed"] += 1
            peer.abort()
            return
        counts["connected"] += 1
        await asyncio.sleep(max(0.0, cfg["t0"] - time.time()) + i / cfg["flooders"] / FLOOD_RATE)
        pending: list[asyncio.Future[dict[str, Any]]] = []
        while time.time() < end and peer.ws is not None and not peer.ws.closed:
            pending.append(peer.send({"t": "post", "text": f"flood {i}"}))
            counts["sent"] += 1
            await asyncio.sleep(1 / FLOOD_RATE)
        for fut in pending:
            try:
                tally(answers, outcome(await asyncio.wait_for(fut, 3)))
            except (ConnectionError, TimeoutError) as exc:
                tally(answers, type(exc).__name__)
        counts["closed"] += int(peer.ws is None or peer.ws.closed)
        peer.abort()

    await asyncio.gather(*(one(i) for i in range(cfg["flooders"])))
    minutes = cfg["seconds"] / 60
    return {**counts, "answers": answers,
            "accepted_per_minute": round(answers.get("ok", 0) / minutes, 1),
            "sent_per_minute": round(counts["sent"] / minutes, 1)}


async def silent(cfg: dict[str, Any], end: float) -> dict[str, Any]:
    """``cfg["silent"]`` silent connections, opened again whenever the server closed them."""
    stats = Silent()
    rounds = 0
    await asyncio.sleep(max(0.0, cfg["t0"] - time.time()))
    while cfg["silent"] and end - time.time() > 0.5:
        rounds += 1
        await hold_silent(HOST, cfg["port"], cfg["silent"], SILENT, end - time.time(), stats)
    return {"count": cfg["silent"], "rounds": rounds, "opened": stats.opened,
            "connect_failed": stats.refused, "closed_by_server": len(stats.closed_after),
            "answers": stats.answers,
            "closed_after_s": {"p50": pct(stats.closed_after, 50),
                               "max": round(max(stats.closed_after), 2)
                               if stats.closed_after else None}}


async def abuse(cfg: dict[str, Any]) -> dict[str, Any]:
    end = cfg["t0"] + cfg["seconds"]
    flooding = asyncio.create_task(flood(cfg, end))
    holding = asyncio.create_task(silent(cfg, end))
    await asyncio.sleep(max(0.0, cfg["t0"] - time.time()))
    stuffing = await stuff(cfg, end)
    return {"stuffing": stuffing, "flooding": await flooding, "silent": await holding}


def abuse_main(cfg: dict[str, Any]) -> dict[str, Any]:
    from bench.loadgen import raise_nofile

    raise_nofile()
    result: dict[str, Any] = run_loop(abuse(cfg))
    return result


# --- the coordinator ------------------------------------------------------------------


def scenario(args: argparse.Namespace, port: int, env: dict[str, str]) -> dict[str, Any]:
    room, nonce = args.room, secrets.token_hex(3)
    ids = run_loop(setup(port, room, nonce, args.questions))
    base = {"port": port, "room": room, "nonce": nonce, "honest": args.honest,
            "per_address": args.per_address, "period": args.period, "qids": ids["qids"],
            "seconds": args.seconds, "target": ids["target"], "stuffers": args.stuffers,
            "flooders": args.flooders, "silent": args.silent}
    out: dict[str, Any] = {}
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        t0 = time.time() + args.lead
        out["quiet"] = {"honest": pool.submit(
            honest_main, {**base, "phase": "quiet", "t0": t0}).result(args.seconds + 90)}
        t0 = time.time() + args.lead
        honest_f = pool.submit(honest_main, {**base, "phase": "abuse", "t0": t0})
        abuse_f = pool.submit(abuse_main, {**base, "t0": t0})
        out["abuse"] = {"honest": honest_f.result(args.seconds + 90),
                        **abuse_f.result(args.seconds + 90)}
    counted = run_loop(votes_on(port, room, ids["target"], nonce))
    stuffing = out["abuse"]["stuffing"]
    summary = {
        "votes_attempted": stuffing["votes_attempted"], "votes_counted": counted,
        "vote_cap": int(env["LIVEHUB_GUEST_VOTES_PER_ADDRESS"]),
        "flood_accepted_per_minute": out["abuse"]["flooding"]["accepted_per_minute"],
        "flood_sent_per_minute": out["abuse"]["flooding"]["sent_per_minute"],
        "guest_address_rate_per_10s": int(env["LIVEHUB_GUEST_ADDRESS_RATE"]),
        # Those of the last round opened less than the head deadline before the end.
        "silent_opened": out["abuse"]["silent"]["opened"],
        "silent_closed_by_server": out["abuse"]["silent"]["closed_by_server"],
        "honest_p99_ms": {"quiet": out["quiet"]["honest"]["ping_to_event_ms"]["p99"],
                          "abuse": out["abuse"]["honest"]["ping_to_event_ms"]["p99"]},
    }
    return {"summary": summary, **out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    ap.add_argument("--honest", type=int, default=200)
    ap.add_argument("--per-address", type=int, default=10, help="honest clients per address")
    ap.add_argument("--period", type=float, default=10.0,
                    help="each honest client posts and votes once per PERIOD seconds")
    ap.add_argument("--questions", type=int, default=10, help="questions honest clients vote on")
    ap.add_argument("--stuffers", type=int, default=10,
                    help="fresh guest identities made at a time by the vote stuffer")
    ap.add_argument("--flooders", type=int, default=50)
    ap.add_argument("--silent", type=int, default=500)
    ap.add_argument("--lead", type=float, default=5.0,
                    help="seconds between starting the client processes and the phase")
    ap.add_argument("--room", default=f"abuse-{secrets.token_hex(3)}")
    ap.add_argument("--redis", default="private",
                    help="Redis URL, or 'private' (default): a redis-server of our own")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="server environment on top of the default limits (repeatable)")
    args = ap.parse_args(argv)
    if (args.seconds > 120 or args.honest > 1000 or args.flooders > 500
            or args.silent > 5000 or args.stuffers > 100 or args.questions > 15):
        ap.error("bounded: --seconds <= 120, --honest <= 1000, --flooders <= 500, "
                 "--silent <= 5000, --stuffers <= 100, --questions <= 15")
    if args.honest > 250 * args.per_address - HONEST_FIRST * args.per_address:
        ap.error("too few addresses for --honest: raise --per-address")
    env = {**default_limits(), **dict(kv.split("=", 1) for kv in args.env)}
    private = PrivateRedis().start() if args.redis == "private" else None
    redis_url = private.url if private is not None else args.redis
    server = Server("livehub-redis", [args.room], Path(tempfile.mkdtemp(prefix="abuse-")),
                    redis_url=redis_url, env=env)
    try:
        server.start()
        result = scenario(args, server.port, env)
    finally:
        server.stop()
        if private is not None:
            private.stop()
    result.update({"server": "livehub-redis (2 processes)", "limits": env,
                   "seconds_per_phase": args.seconds, "honest": args.honest,
                   "flooders": args.flooders, "silent": args.silent,
                   "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
