"""The request path, once for every way in: decide, checks, commit, answer.

A WebSocket request (``Hub.handle``) and an announcement over HTTP (``POST
/api/rooms/{room}/announce``) both go through :meth:`RequestService.run`:

1. a repeat of an idempotent request answered lately is answered again from memory;
2. ``room.decide`` (pure) says which events the request causes, or refuses it;
   a refused repeat of a request committed through another process is answered with
   the first commit (``broker.recall``);
3. the fair limits (``budgets.checks_for``) and the idempotency key go to the broker
   with the events, and are decided there atomically with the commit;
4. the answer: the decision's reply with the commit's ``seq``, or the first commit's
   ``ref`` for a repeat.

Metrics (requests by type and outcome, commit time, events committed, broker errors)
are counted here, and requests in flight are tracked so that a shutdown can let the
commits already begun finish.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from livehub import metrics
from livehub import protocol as p
from livehub import room as core
from livehub.broker.base import Broker, BrokerUnavailable, Commit
from livehub.budgets import Limits, checks_for
from livehub.limits_log import refused
from livehub.protocol import ErrorCode, ProtocolError
from livehub.watchwords import Matcher

IDEM_TTL_MS: Final = 600_000  # a repeat within 10 minutes is answered with the first answer
MAX_IDEM_KEYS: Final = 100_000  # answers remembered in memory (the broker keeps them too)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Call:
    """One request to one room, from whichever transport."""

    room: str
    actor: core.Actor
    req: p.Request
    # The sender's idempotency key (a WebSocket request's ``id``, an HTTP
    # ``Idempotency-Key``): a repeat is answered with the first answer. None: not
    # idempotent.
    idem: str | None = None
    ip: str = ""  # for the refusal log
    budgets: bool = True  # check the fair limits with the commit
    marks: Mapping[str, Any] = field(default_factory=dict)  # keys added to every event
    kind: str = ""  # the request type in metrics (default: ``req.t``)
    words: Matcher | None = None  # the room's watched words


@dataclass(frozen=True, slots=True)
class Answer:
    reply: dict[str, Any]  # the ``ok`` fields (``seq`` included)
    duplicate: bool = False  # a repeat: nothing was published this time


class RequestService:
    """Runs requests against a room's state and the broker."""

    def __init__(self, broker: Broker, *, limits: Limits, max_text: int,
                 idem_ttl_ms: int = IDEM_TTL_MS, max_keys: int = MAX_IDEM_KEYS,
                 clock: Callable[[], int] = now_ms) -> None:
        self.broker = broker
        self.limits = limits
        self.max_text = max_text
        self.idem_ttl_ms = idem_ttl_ms
        self.max_keys = max_keys
        self._clock = clock
        self._answers: dict[tuple[str, str, str], tuple[int, dict[str, Any]]] = {}
        self.inflight = 0  # requests between decide and their answer
        self.idle = asyncio.Event()
        self.idle.set()

    async def run(self, state: core.RoomState, call: Call) -> Answer:
        """Decide, commit and answer ``call`` against ``state`` (the room's state now).

        Raises :class:`ProtocolError` for a refusal (nothing was published)."""
        label = call.kind or call.req.t
        self.inflight += 1
        self.idle.clear()
        try:
            answer = await self._run(state, call)
        except ProtocolError as exc:
            metrics.REQUESTS.labels(label, exc.code).inc()
            raise
        finally:
            self.inflight -= 1
            if not self.inflight:
                self.idle.set()
        metrics.REQUESTS.labels(label, "ok").inc()
        return answer

    async def _run(self, state: core.RoomState, call: Call) -> Answer:
        now = self._clock()
        req, actor = call.req, call.actor
        key = None if call.idem is None else (call.room, actor.uid, call.idem)
        if key is not None:
            seen = self._answers.get(key)
            if seen is not None and now - seen[0] < self.idem_ttl_ms:
                return Answer(seen[1], duplicate=True)
        ctx = core.Context(now=now, new_id=secrets.token_hex(6), max_text=self.max_text,
                           words=call.words)
        try:
            decision = core.decide(state, actor, req, ctx)
        except ProtocolError:
            if key is not None:  # a retry of a request committed through another process?
                earlier = await self._recall(call)
                if earlier is not None:
                    return _still_held(state, earlier)
            raise
        if not decision.events:
            return Answer({**decision.reply, "seq": state.seq} if decision.seq
                          else decision.reply)
        if call.marks:
            for ev in decision.events:
                ev.update(call.marks)
        idem = None if call.idem is None else (_broker_key(call), decision.ref or "")
        checks = (checks_for(actor, decision.events, state.settings, self.limits)
                  if call.budgets else ())
        started = time.perf_counter()
        try:
            commit = await self.broker.commit(call.room, decision.events, idem=idem,
                                              idem_ttl=self.idem_ttl_ms // 1000,
                                              checks=checks)
        except BrokerUnavailable:
            metrics.BROKER_ERRORS.labels("commit").inc()
            raise ProtocolError(ErrorCode.UNAVAILABLE,
                                "the server cannot reach its broker; nothing was published, "
                                "retry", req.id) from None
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        if commit.refused is not None:
            raise _refusal(call, commit)
        if commit.duplicate:
            answer = _still_held(state, Answer(_ref_reply(req, commit.ref, commit.seq),
                                               duplicate=True))
        else:
            metrics.EVENTS_COMMITTED.inc(len(decision.events))
            # (a report's ``ok`` carries no seq: its event is not the sender's to see)
            answer = Answer({**decision.reply, "seq": commit.seq} if decision.seq
                            else decision.reply)
        if key is not None:
            self._remember(key, now, answer.reply)
        return answer

    def _remember(self, key: tuple[str, str, str], now: int, reply: dict[str, Any]) -> None:
        answers = self._answers
        answers[key] = (now, reply)
        # Insertion order is time order: drop what has expired from the front.
        while answers:
            first = next(iter(answers))
            if now - answers[first][0] < self.idem_ttl_ms and len(answers) <= self.max_keys:
                break
            del answers[first]

    async def _recall(self, call: Call) -> Answer | None:
        try:
            found = await self.broker.recall(call.room, _broker_key(call))
        except BrokerUnavailable:
            return None
        if found is None:
            return None
        return Answer(_ref_reply(call.req, found.ref, found.seq), duplicate=True)


def _broker_key(call: Call) -> str:
    return f"{call.actor.uid}\x00{call.idem}"


def _ref_reply(req: p.Request, ref: str | None, seq: int) -> dict[str, Any]:
    return {"mid" if req.t == "post" else "qid": ref, "seq": seq}


def _still_held(state: core.RoomState, answer: Answer) -> Answer:
    """A retried post that is still held says so, as its first answer did."""
    if answer.reply.get("mid") in state.mod.held:
        return Answer({**answer.reply, "held": True}, answer.duplicate)
    return answer


def _refusal(call: Call, commit: Commit) -> ProtocolError:
    check = commit.refused
    assert check is not None
    rid = call.req.id
    refused(check.label or check.kind, call.ip, room=call.room, uid=call.actor.uid)
    if check.code == ErrorCode.SLOW_MODE:
        wait = max(1, (commit.retry_ms + 999) // 1000)
        return ProtocolError(ErrorCode.SLOW_MODE, f"slow mode: wait {wait} s", rid)
    what = {
        "person": f"more than {check.limit} posts, questions and votes from you in "
                  f"{check.window_ms // 1000} s in this room",
        "guest_address": f"more than {check.limit} guest requests from your address "
                         f"in {check.window_ms // 1000} s in this room",
        "guest_votes": f"{check.limit} guests from your address have already voted "
                       "for this question",
        "guest_ballots": f"{check.limit} guests from your address have already voted "
                         "in this poll",
    }.get(check.label, "over a limit")
    return ProtocolError(ErrorCode.RATE_LIMITED, f"{what}: nothing was published", rid)
