"""Server settings: environment variables (``LIVEHUB_*``), overridden by CLI flags."""

from __future__ import annotations

import ipaddress
import re
from typing import Final, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# scheme://host[:port], nothing else: these go into a CSP header as they are.
_ORIGIN_RE: Final = re.compile(r"https?://(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+(?::\d{1,5})?")


class Config(BaseSettings):
    """Every knob of a livehub process, with the defaults of PROTOCOL.md."""

    model_config = SettingsConfigDict(env_prefix="LIVEHUB_", extra="ignore",
                                      populate_by_name=True)

    env: Literal["development", "production", "test"] = "development"
    secret: str | None = None
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("LIVEHUB_REDIS_URL", "REDIS_URL", "redis_url")
    )
    programme: str | None = None
    allowed_origins: str = ""  # comma-separated; empty: the server's own origin; "*": any
    # Origins whose pages may frame /embed/{room} (CSP frame-ancestors); empty: none.
    embed_origins: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, validation_alias=AliasChoices("PORT", "LIVEHUB_PORT", "port"))

    hello_timeout: float = Field(default=10.0, gt=0)
    rate_limit: int = Field(default=20, ge=0)  # requests per connection per rate_window; 0: off
    rate_window: float = Field(default=10.0, gt=0)
    # Rate-limited requests tolerated within one window before the connection is closed 1008.
    flood_limit: int = Field(default=20, ge=1)
    max_frame: int = Field(default=64 * 1024, ge=256)
    max_text: int = Field(default=2000, ge=1)
    # Open connections per client address per process, counted from accept; 0: off.
    max_connections_per_address: int = Field(default=500, ge=0)
    # The old name (counted at the upgrade, default 200): still read for one release.
    max_connections_per_ip: int | None = Field(default=None, ge=0)
    # Open connections per process, HTTP and WebSocket; also kept below the open-file limit.
    max_connections: int = Field(default=20_000, ge=1)
    header_timeout: float = Field(default=10.0, gt=0)  # seconds from accept to a request head
    forwarded_allow_ips: str = "127.0.0.1,::1"  # proxies whose X-Forwarded-For is read
    # Fair limits (docs/protocol.md): per client address, on every process together.
    guest_address_rate: int = Field(default=120, ge=0)  # guests' publishing per 10 s; 0: off
    guest_votes_per_address: int = Field(default=50, ge=0)  # per question (and poll); 0: off
    # New guest identities one client address may make in a room per hour; 0: off.
    guest_names_per_hour: int = Field(default=1000, ge=0)
    send_queue: int = Field(default=1000, ge=1)  # queued frames per connection before 1013
    # Sending (livehub.hub.Flusher): frames are coalesced once more than this many wait
    # for one connection, and a busy process lets each flush wait this many seconds.
    coalesce_after: int = Field(default=2, ge=1)
    flush_linger: float = Field(default=0.005, ge=0, le=0.1)
    ping_interval: float = Field(default=20.0, ge=0)
    ping_timeout: float = Field(default=20.0, ge=0)
    compression: bool = False
    vote_window: float = Field(default=1.0, ge=0)  # seconds over which votes coalesce
    presence_interval: float = Field(default=1.0, gt=0)
    room_linger: float = Field(default=30.0, ge=0)  # seconds an empty room stays subscribed
    max_log: int = Field(default=100_000, ge=100)  # events kept per room by the memory broker
    redis_max_log: int | None = Field(default=None, ge=100)  # None: Redis keeps every event
    redis_namespace: str = Field(default="livehub", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # Bounded cost (issue 14; docs/operations.md "Bounds").
    max_replay: int = Field(default=1000, ge=0)  # events replayed after `since`
    max_replay_bytes: int = Field(default=512 * 1024, ge=1024)  # encoded replay per welcome
    send_queue_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)  # per connection
    # Retention (docs/operations.md): archive and trim the Redis log of a room whose
    # session ended this many seconds ago (0: never), keeping its last retain_keep events.
    retain_after: float = Field(default=7 * 86400, ge=0)
    retain_keep: int = Field(default=1000, ge=1)
    retain_interval: float = Field(default=3600, gt=0)  # seconds between archiver runs
    max_idem_keys: int = Field(default=100_000, ge=100)  # memory broker's idempotency keys
    max_log_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)  # memory log per room
    shutdown_grace: float = Field(default=8.0, ge=0)
    log_format: Literal["text", "json"] = "text"
    log_level: str = "info"
    # Sign-in with an OpenID Connect provider: all four or none (see livehub.oidc).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    public_url: str | None = None

    @field_validator("redis_url")
    @classmethod
    def _cluster_url_is_well_formed(cls, v: str | None) -> str | None:
        if v and v.startswith("redis+cluster://"):
            from livehub.broker.cluster import parse_cluster_url

            parse_cluster_url(v)  # a ValueError names what is wrong
        return v or None

    @field_validator("secret", "oidc_issuer", "oidc_client_id", "oidc_client_secret",
                     "public_url")
    @classmethod
    def _empty_secret_is_none(cls, v: str | None) -> str | None:
        return v or None

    @field_validator("embed_origins")
    @classmethod
    def _embed_origins_are_origins(cls, v: str) -> str:
        for origin in (o.strip() for o in v.split(",") if o.strip()):
            if not _ORIGIN_RE.fullmatch(origin.rstrip("/")):
                raise ValueError(f"LIVEHUB_EMBED_ORIGINS: {origin[:80]!r} is not an origin "
                                 "such as https://www.eastmere.gov.uk")
        return v

    def embed_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.embed_origins.split(",") if o.strip()]

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_list(cls, v: str) -> str:
        from livehub.client_address import parse_proxies

        parse_proxies(v)  # a ValueError names the entry that is not an address
        return v

    @model_validator(mode="after")
    def _old_connection_limit(self) -> Config:
        if (self.max_connections_per_ip is not None
                and "max_connections_per_address" not in self.model_fields_set):
            self.max_connections_per_address = self.max_connections_per_ip
        return self

    def origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()]


MIN_SECRET_BYTES = 32
MAKE_SECRET = "make one with `livehub secret`"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def secret_problem(config: Config) -> str | None:
    """Why this configuration must not start (None: it may). Fail closed: a server
    others can reach signs with a secret its operator chose, and production's secret
    is long enough that a token handed to a guest cannot be used to guess it."""
    if config.secret is None:
        if config.env == "production":
            return f"LIVEHUB_SECRET must be set when LIVEHUB_ENV=production: {MAKE_SECRET}"
        if not is_loopback(config.host):
            return (f"LIVEHUB_SECRET must be set to serve on {config.host} (anything but "
                    f"loopback): {MAKE_SECRET}")
        return None
    if config.env == "production" and len(config.secret.encode()) < MIN_SECRET_BYTES:
        return (f"LIVEHUB_SECRET is {len(config.secret.encode())} bytes: production needs "
                f"at least {MIN_SECRET_BYTES} random bytes, or tokens can be forged by "
                f"guessing it: {MAKE_SECRET}")
    return None
