"""Organisers' HTTP API: transcripts, announcements and programme reloads.

Every endpoint needs ``Authorization: Bearer <token>`` with a moderator token
(``livehub token --role moderator``); a token limited to some rooms (``--room``)
works only for those rooms, and not for reloading the programme. Errors are
JSON ``{"error": code, "message": text}``:

=====  ===============================================================
401    no bearer token, or one that is invalid or expired (with ``WWW-Authenticate``)
403    a valid token that is not a moderator's, or whose ``rooms`` lack the room
404    no such room in the programme
400    a body that is not JSON, an unknown ``format``, a bad ``Idempotency-Key``
413    a body over the frame size limit
422    a JSON body that is not ``{"text": "..."}`` with usable text (``problems`` says
       which field and why); for a reload, a programme file with problems
503    the broker (Redis) cannot be reached; nothing was published (``Retry-After``)
=====  ===============================================================

* ``GET /api/rooms/{room}/transcript?format=md|csv|json`` (default ``md``): the
  room's transcript (:mod:`livehub.export`) as a download.
* ``POST /api/rooms/{room}/announce`` with ``{"text": "..."}``: a ``msg`` from the
  token's user, marked ``announcement: true``, decided and committed like a post
  sent over a WebSocket (so it is sequenced, fanned out to every process and in the
  log). 201 ``{"room", "mid", "seq"}``. An ``Idempotency-Key`` header (1-64
  characters) makes retries safe: the same key from the same user within 10 minutes
  answers 200 with the first ``mid`` and publishes nothing.
* ``POST /api/programme/reload``: re-read the programme file (as ``SIGHUP`` does),
  see :func:`reload_programme`.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from livehub import export, metrics, roomlog
from livehub import protocol as p
from livehub import room as core
from livehub.auth import AuthError, Identity, verify
from livehub.broker.base import BrokerUnavailable
from livehub.hub import Hub
from livehub.programme import SLUG_RE, ProgrammeError, Session, load_programme
from livehub.protocol import ErrorCode, ProtocolError
from livehub.roles import Role
from livehub.service import Answer, Call

log = structlog.get_logger("livehub.api")

REALM: Final = 'Bearer realm="livehub"'
LOG_PAGE: Final = roomlog.LOG_PAGE
IDEMPOTENCY_HEADER: Final = "idempotency-key"


class ApiError(Exception):
    """An error answer: HTTP status, a code for programs and a message for people."""

    def __init__(self, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.code, "message": self.message, **self.extra},
                            status_code=self.status, headers=self.headers)


Endpoint = Callable[[Request], Awaitable[Response]]


def _endpoint(name: str) -> Callable[[Endpoint], Endpoint]:
    """Turn :class:`ApiError` into its JSON answer and count every answer."""

    def wrap(handler: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            room = request.path_params.get("room")
            with structlog.contextvars.bound_contextvars(endpoint=name, room=room, uid=None):
                try:
                    response = await handler(request)
                except ApiError as exc:
                    if exc.status >= 500:
                        log.warning("api request failed", status=exc.status, error=exc.code,
                                    message=exc.message)
                    elif exc.status in (401, 403):  # who tried what, for the record
                        log.info("api request refused", status=exc.status, error=exc.code,
                                 message=exc.message)
                    response = exc.response()
            metrics.API_REQUESTS.labels(name, str(response.status_code)).inc()
            return response

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


# --- authentication --------------------------------------------------------------------


def _unauthorized(message: str, error: str | None = None) -> ApiError:
    challenge = REALM if error is None else f'{REALM}, error="{error}"'
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def _forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message,
                    headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope"'})


def authenticate(request: Request) -> Identity:
    """The moderator behind the request's bearer token (401/403 otherwise)."""
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("this endpoint needs a moderator token: send "
                            "'Authorization: Bearer <token>'")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("the Authorization header must be 'Bearer <token>'",
                            "invalid_request")
    try:
        identity = verify(request.app.state.secret, token)
    except AuthError as exc:
        raise _unauthorized(f"bad token: {exc}", "invalid_token") from None
    structlog.contextvars.bind_contextvars(uid=identity.uid)
    if identity.role is not Role.MODERATOR:
        raise _forbidden(f"this endpoint needs a moderator token; this one is a "
                         f"{identity.role}'s")
    return identity


def _session(request: Request, identity: Identity) -> Session:
    """The room named in the path: 404 when unknown, 403 when the token excludes it."""
    room = request.path_params["room"]
    session = _hub(request).session(room) if SLUG_RE.fullmatch(room) else None
    if session is None:
        raise ApiError(404, "not_found", f"no room {room[:64]!r} in the programme")
    if not identity.may_enter(room):
        raise _forbidden(f"this token is not valid for room {room!r}")
    return session


def _unavailable(exc: BrokerUnavailable, what: str) -> ApiError:
    return ApiError(503, "unavailable",
                    f"the server cannot reach its broker ({exc}); {what}, retry",
                    headers={"Retry-After": "5"})


# The whole-log reader and the state fold live in livehub.roomlog (these names stay for
# the callers that import them from here).
read_room_log = roomlog.read_all
fold = roomlog.fold


# --- transcript --------------------------------------------------------------------------


@_endpoint("transcript")
async def transcript(request: Request) -> Response:
    """``GET /api/rooms/{room}/transcript?format=md|csv|json``."""
    identity = authenticate(request)
    session = _session(request, identity)
    fmt = request.query_params.get("format", export.DEFAULT_FORMAT)
    if fmt not in export.FORMATS:
        raise ApiError(400, "bad_format", f"format must be one of "
                       f"{', '.join(export.FORMATS)} (got {fmt[:20]!r})")
    hub = _hub(request)
    try:
        history = await read_room_log(hub.broker, session.slug)
    except BrokerUnavailable as exc:
        metrics.BROKER_ERRORS.labels("read").inc()
        raise _unavailable(exc, "no transcript was made") from None
    room_log = export.RoomLog(room=session.slug, events=history.events, epoch=history.epoch,
                              complete=history.complete, session=session,
                              conference=hub.programme.title)
    # A long log takes a while to render: keep the event loop serving the rooms.
    body = await run_in_threadpool(export.render, fmt, room_log)
    log.info("transcript exported", format=fmt, events=len(history.events))
    name = export.filename(session.slug, fmt)
    return Response(body, media_type=export.MEDIA_TYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
        "X-Livehub-Epoch": history.epoch,
    })


# --- announce ------------------------------------------------------------------------------


class AnnounceBody(BaseModel):
    """``{"text": "..."}``: what an announcement says (limits as for a post)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    text: str

    @field_validator("text")
    @classmethod
    def _usable(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        limit = int((info.context or {}).get("max_text", 2000))
        if len(value) > limit:
            raise ValueError(f"must be at most {limit} characters (got {len(value)})")
        if p.has_forbidden_control(value):
            raise ValueError("must not hold control characters other than tab, CR and LF")
        return value


def _body_problems(exc: ValidationError) -> list[dict[str, str]]:
    problems = []
    for error in exc.errors():
        field = ".".join(str(x) for x in error["loc"]) or "body"
        kind = error["type"]
        if kind == "missing":
            message = "is required"
        elif kind == "extra_forbidden":
            message = "unknown field: the body is {\"text\": \"...\"}"
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            message = "must be a JSON object like {\"text\": \"...\"}"
        elif kind in ("string_type",):
            message = "must be a string"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
        problems.append({"field": field, "message": message})
    return problems


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"the body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "too_large", f"the body is over {limit} bytes")
    return bytes(body)


async def _announce_body(request: Request, max_text: int, limit: int) -> AnnounceBody:
    raw = await _read_body(request, limit)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json",
                       f"the body must be JSON like {{\"text\": \"...\"}} ({exc})") from None
    try:
        return AnnounceBody.model_validate(data, context={"max_text": max_text})
    except ValidationError as exc:
        problems = _body_problems(exc)
        message = "; ".join(f"{x['field']}: {x['message']}" for x in problems)
        raise ApiError(422, "invalid_body", message, problems=problems) from None


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 64 or not key.isprintable():
        raise ApiError(400, "bad_idempotency_key",
                       "Idempotency-Key must be 1 to 64 printable characters")
    return key


_DECIDE_STATUS: Final = {
    ErrorCode.FORBIDDEN: 403, ErrorCode.MUTED: 403, ErrorCode.BANNED: 403,
    ErrorCode.ROOM_CLOSED: 409, ErrorCode.SLOW_MODE: 429, ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_LONG: 422, ErrorCode.BAD_FRAME: 422, ErrorCode.NOT_FOUND: 404,
    ErrorCode.BLOCKED: 422,
    ErrorCode.UNAVAILABLE: 503,
}


async def _room_state(hub: Hub, session: Session) -> core.RoomState:
    """The room's current state: this process's replica, else a fold of its log."""
    replica = hub.replicas.get(session.slug)
    if replica is not None and replica.ready.is_set():
        return replica.state
    return roomlog.fold(session, await roomlog.read_all(hub.broker, session.slug))


@_endpoint("announce")
async def announce(request: Request) -> Response:
    """``POST /api/rooms/{room}/announce`` with ``{"text": "..."}``."""
    identity = authenticate(request)
    session = _session(request, identity)
    hub = _hub(request)
    config = hub.config
    key = _idempotency_key(request)
    body = await _announce_body(request, config.max_text, config.max_frame)
    try:
        answer = await _announce(hub, session, identity, body.text, key)
    except ProtocolError as exc:
        status = _DECIDE_STATUS.get(exc.code, 400)
        headers = {"Retry-After": "5"} if status == 503 else None
        raise ApiError(status, str(exc.code), exc.message, headers=headers) from None
    reply = {"room": session.slug, **answer.reply}
    if answer.duplicate:
        reply["duplicate"] = True
    log.info("announcement posted", mid=reply["mid"], seq=reply["seq"],
             duplicate=answer.duplicate)
    return JSONResponse(reply, status_code=200 if answer.duplicate else 201)


async def _announce(hub: Hub, session: Session, identity: Identity, text: str,
                    key: str | None) -> Answer:
    """Decide and commit one announcement through the request path the WebSocket uses."""
    try:
        state = await _room_state(hub, session)
    except BrokerUnavailable as exc:
        metrics.BROKER_ERRORS.labels("read").inc()
        metrics.REQUESTS.labels("announce", ErrorCode.UNAVAILABLE).inc()
        raise ProtocolError(ErrorCode.UNAVAILABLE, f"the server cannot reach its broker "
                            f"({exc}); nothing was published, retry") from None
    call = Call(session.slug, core.Actor(identity.uid, identity.name, identity.role),
                p.Post(text=text), idem=None if key is None else f"announce:{key}",
                budgets=False, marks={"announcement": True}, kind="announce",
                words=hub.programme.matcher(session.slug))
    return await hub.service.run(state, call)


# --- programme reload ----------------------------------------------------------------------


def _reload_lock(app: Starlette) -> asyncio.Lock:
    lock: asyncio.Lock | None = getattr(app.state, "programme_reload_lock", None)
    if lock is None:
        lock = app.state.programme_reload_lock = asyncio.Lock()
    return lock


async def reload_programme(app: Starlette) -> dict[str, Any]:
    """Re-read the programme file the server was started with and serve it.

    A file with problems changes nothing and raises :class:`ProgrammeError`. Otherwise
    rooms are added and titles, times and speakers updated without dropping anyone
    (see :meth:`Hub.reload_programme`). Returns what changed.
    """
    hub: Hub = app.state.hub
    async with _reload_lock(app):
        path = app.state.config.programme
        try:
            programme = await run_in_threadpool(load_programme, path)
        except ProgrammeError:
            metrics.PROGRAMME_RELOADS.labels("refused").inc()
            raise
        changes = await hub.reload_programme(programme)
        cache = getattr(app.state, "summary_cache", None)
        if isinstance(cache, dict):
            cache.clear()
    metrics.PROGRAMME_RELOADS.labels("ok").inc()
    result: dict[str, Any] = {"status": "reloaded", "source": programme.source,
                              "title": hub.programme.title,
                              "rooms": len(hub.programme.sessions), **changes}
    log.info("programme reloaded", **result)
    return result


@_endpoint("reload")
async def reload_endpoint(request: Request) -> Response:
    """``POST /api/programme/reload``: needs a moderator token valid in every room."""
    identity = authenticate(request)
    if identity.rooms is not None:
        raise _forbidden("reloading the programme needs a moderator token without a "
                         "room restriction")
    try:
        result = await reload_programme(request.app)
    except ProgrammeError as exc:
        log.warning("programme reload refused; the current programme stays",
                    problems=exc.problems)
        raise ApiError(422, "bad_programme", "the programme file has problems; the current "
                       "programme stays", problems=exc.problems) from None
    return JSONResponse(result)


def install_reload_signal(app: object) -> bool:
    """Reload ``app``'s programme on SIGHUP (call from the running event loop).

    False when ``app`` is not livehub's Starlette app, or the platform or thread cannot
    take signal handlers.
    """
    sighup = getattr(signal, "SIGHUP", None)
    if sighup is None or not isinstance(app, Starlette) or not hasattr(app.state, "hub"):
        return False
    tasks: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        try:
            await reload_programme(app)
        except ProgrammeError as exc:
            log.error("programme reload (SIGHUP) refused; the current programme stays",
                      problems=exc.problems)
        except Exception:
            log.exception("programme reload (SIGHUP) failed")

    def on_sighup() -> None:
        log.info("SIGHUP: reloading the programme")
        task = asyncio.get_running_loop().create_task(reload())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        asyncio.get_running_loop().add_signal_handler(sighup, on_sighup)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True


def routes() -> list[BaseRoute]:
    return [
        Route("/api/rooms/{room}/transcript", transcript, methods=["GET"]),
        Route("/api/rooms/{room}/announce", announce, methods=["POST"]),
        Route("/api/programme/reload", reload_endpoint, methods=["POST"]),
    ]
