"""The Starlette application: routes, and the broker and hub's lifetime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from functools import partial

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute

from livehub import api, http, live_pages, oidc, pages, retention, signin
from livehub.broker import Broker, make_broker
from livehub.client_address import ClientAddressMiddleware, parse_proxies
from livehub.config import Config, secret_problem
from livehub.hub import Hub
from livehub.programme import Programme, load_programme
from livehub.ws import websocket_endpoint

log = structlog.get_logger("livehub.app")


class ConfigError(Exception):
    """The server cannot start with this configuration; the message says why."""


def resolve_secret(config: Config) -> str:
    """The signing secret; in development a random one is made (and said so)."""
    problem = secret_problem(config)
    if problem is not None:
        raise ConfigError(problem)
    if config.secret:
        return config.secret
    raise ConfigError("no LIVEHUB_SECRET: the CLI makes a development secret; "
                      "set LIVEHUB_SECRET when building the app yourself")


def create_app(config: Config | None = None, *, programme: Programme | None = None,
               broker: Broker | None = None) -> Starlette:
    """Build the app. Without arguments everything comes from the environment."""
    config = config or Config()
    secret = resolve_secret(config)
    programme = programme or load_programme(config.programme)
    try:
        oidc_settings = oidc.settings_from(config)
    except oidc.SettingsError as exc:
        raise ConfigError(str(exc)) from None
    broker = broker or make_broker(config.redis_url, max_log=config.max_log,
                                   redis_max_log=config.redis_max_log,
                                   namespace=config.redis_namespace,
                                   max_log_bytes=config.max_log_bytes,
                                   max_idem=config.max_idem_keys)
    hub = Hub(config, broker, programme)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await broker.start()
        await hub.start()
        if config.retain_after > 0 and broker.name != "memory":
            hub.tasks.keep_running(partial(retention.archiver, hub), name="archiver")
        log.info("livehub ready", broker=broker.name, rooms=len(programme.sessions),
                 conference=programme.title)
        try:
            yield
        finally:
            await hub.stop()
            await broker.close()

    app = Starlette(
        routes=[
            *http.routes(),
            *api.routes(),
            *pages.routes(),
            *live_pages.routes(),
            *signin.routes(),
            WebSocketRoute("/ws/{room}", websocket_endpoint),
        ],
        # First: every handler below sees the client address as request.client.host.
        middleware=[Middleware(ClientAddressMiddleware,
                               proxies=parse_proxies(config.forwarded_allow_ips)),
                    *pages.middleware(config.embed_origin_list())],
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.secret = secret
    app.state.config = config
    app.state.summary_cache = {}
    app.state.signin = signin.SignIn(oidc_settings, secret) if oidc_settings else None
    return app
