"""The ``livehub`` command: serve, secret, token, invite, check, export, archive."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
from pydantic import ValidationError

from livehub import auth, oidc
from livehub.broker.base import BrokerUnavailable, History
from livehub.config import Config, is_loopback, secret_problem
from livehub.export import DEFAULT_FORMAT, FORMATS, RoomLog, render
from livehub.programme import ProgrammeError, load_programme
from livehub.protocol import name_problem
from livehub.roles import Role


def _config(**overrides: Any) -> Config:
    try:
        return Config(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise click.ClickException(f"bad configuration: {problems}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="livehub")
def main() -> None:
    """livehub: live, moderated discussion rooms for online conferences."""


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000, or $PORT).")
@click.option("--redis", "redis_url", default=None, metavar="URL",
              help="Redis URL; without it the embedded in-memory broker is used.")
@click.option("--programme", default=None, metavar="FILE",
              help="Conference programme (TOML); default: the bundled sample.")
@click.option("--workers", type=click.IntRange(1, 64), default=1,
              help="Processes sharing the port (needs --redis when above 1).")
@click.option("--forwarded-allow-ips", "forwarded_allow_ips", default=None, metavar="LIST",
              help="Proxies whose X-Forwarded-For names the client: comma-separated "
                   "addresses or networks, or * (default 127.0.0.1,::1).")
def serve(host: str | None, port: int | None, redis_url: str | None, programme: str | None,
          workers: int, forwarded_allow_ips: str | None) -> None:
    """Run the server."""
    cfg = _config(host=host, port=port, redis_url=redis_url, programme=programme,
                  forwarded_allow_ips=forwarded_allow_ips)
    if workers > 1 and not cfg.redis_url:
        raise click.ClickException(
            "--workers above 1 needs --redis URL: processes share rooms through Redis")
    problem = secret_problem(cfg)
    if problem is not None:
        raise click.ClickException(problem)
    try:
        oidc.settings_from(cfg)
    except oidc.SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        prog = load_programme(cfg.programme)
    except ProgrammeError as exc:
        raise click.ClickException(f"cannot start with this programme:\n{exc}") from None
    dev_secret = not cfg.secret
    if dev_secret:
        cfg = cfg.model_copy(update={"secret": secrets.token_urlsafe(32)})
        # Workers are separate processes: they must sign and check with the same secret.
        os.environ["LIVEHUB_SECRET"] = cfg.secret or ""
    shown = "localhost" if cfg.host in ("127.0.0.1", "0.0.0.0", "::") else cfg.host
    url = f"http://{shown}:{cfg.port}/"
    broker = f"Redis at {_redact(cfg.redis_url)}" if cfg.redis_url else "the in-memory broker"
    click.echo(f"livehub: serving {prog.title!r} ({len(prog.sessions)} rooms) on {broker}")
    click.echo(f"livehub: open {url}")
    if dev_secret and is_loopback(cfg.host):  # secret_problem allows no other case
        first = prog.sessions[0].slug
        assert cfg.secret is not None
        mod = auth.mint(cfg.secret, name="Moderator", role=Role.MODERATOR, sub="dev-moderator")
        click.echo("livehub: no LIVEHUB_SECRET set, so a development secret was made for this "
                   "run (tokens die with it)")
        click.echo(f"livehub: moderator sign-in: {url}room/{first}#token={mod}")
    from livehub.server import run, run_workers

    if workers > 1:
        run_workers(cfg, workers)
    else:
        run(cfg)


@main.command("secret")
def make_secret() -> None:
    """Print a strong random LIVEHUB_SECRET (48 random bytes, URL-safe)."""
    click.echo(secrets.token_urlsafe(48))


@main.command()
@click.option("--name", required=True, help="Display name.")
@click.option("--role", required=True,
              type=click.Choice([str(r) for r in Role], case_sensitive=False))
@click.option("--sub", default=None, help="User id (default: made up).")
@click.option("--room", "rooms", multiple=True, metavar="SLUG",
              help="Limit the token to this room (repeatable).")
@click.option("--ttl", default="8h", show_default=True, help="Lifetime: 90s, 30m, 8h, 2d.")
@click.option("--affiliation", default=None, metavar="TEXT",
              help='Badge shown beside the name, e.g. "Eastmere District Council".')
def token(name: str, role: str, sub: str | None, rooms: tuple[str, ...], ttl: str,
          affiliation: str | None) -> None:
    """Print a sign-in token signed with LIVEHUB_SECRET."""
    secret = os.environ.get("LIVEHUB_SECRET")
    if not secret:
        raise click.ClickException("LIVEHUB_SECRET is not set: the server could not check "
                                   "a token signed without it (make a strong one with "
                                   "`livehub secret`)")
    try:
        seconds = auth.parse_ttl(ttl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    if not name or len(name) > 80:
        raise click.BadParameter("must be 1 to 80 characters", param_hint="--name")
    problem = name_problem(name)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--name")
    problem = None if affiliation is None else auth.affiliation_problem(affiliation)
    if problem:
        raise click.BadParameter(problem, param_hint="--affiliation")
    click.echo(auth.mint(secret, name=name, role=Role(role.lower()), sub=sub,
                         rooms=list(rooms) or None, ttl=seconds, affiliation=affiliation))


@main.command("invite")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--base-url", default=None, metavar="URL",
              help="Start of each link (default: $LIVEHUB_PUBLIC_URL, else "
                   "http://127.0.0.1:8000).")
@click.option("--ttl", default="72h", show_default=True,
              help="How long each link works: 90s, 30m, 8h, 2d.")
@click.option("--programme", default=None, metavar="FILE",
              help="Programme whose rooms the rows name (default: as `serve` reads it).")
def invite_command(file: str, base_url: str | None, ttl: str, programme: str | None) -> None:
    """Write FILE.csv back with a personal sign-in link per row.

    The header names name, role, room and optionally affiliation; other columns are
    copied through. A link is a bearer credential: whoever holds it joins as that
    person, in that room, until it expires.
    """
    from livehub.invite import DEFAULT_BASE, invite

    secret = os.environ.get("LIVEHUB_SECRET")
    if not secret:
        raise click.ClickException("LIVEHUB_SECRET is not set: the server could not check "
                                   "links signed without it")
    try:
        seconds = auth.parse_ttl(ttl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    cfg = _config(programme=programme)
    try:
        prog = load_programme(cfg.programme)
    except ProgrammeError as exc:
        raise click.ClickException(f"cannot read the programme:\n{exc}") from None
    try:
        with open(file, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise click.ClickException(f"{file}: cannot read: {exc.strerror or exc}") from None
    base = (base_url or cfg.public_url or DEFAULT_BASE).rstrip("/")
    result = invite(data, source=file, programme=prog, secret=secret, base=base, ttl=seconds)
    if result.problems:
        for problem in result.problems:
            click.echo(problem, err=True)
        sys.exit(1)
    sys.stdout.buffer.write(result.output)
    sys.stdout.flush()


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def check(file: str) -> None:
    """Validate a programme file, naming each problem."""
    try:
        prog = load_programme(file)
    except ProgrammeError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(1)
    click.echo(f"{file}: ok: {prog.title!r}, {len(prog.sessions)} sessions over "
               f"{len([d for d, _ in prog.days() if d])} days")


def _redact(url: str) -> str:
    """A URL fit for a message: any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


async def _read_room_log(cfg: Config, room: str) -> History:
    from livehub.broker import make_broker
    from livehub.roomlog import read_all

    # The same broker settings as `serve` (livehub.app.create_app), so the same keys.
    broker = make_broker(cfg.redis_url, max_log=cfg.max_log, redis_max_log=cfg.redis_max_log,
                         namespace=cfg.redis_namespace)
    await broker.start()
    try:
        return await asyncio.wait_for(read_all(broker, room), 60)
    finally:
        await broker.close()


@main.command("export")
@click.argument("room")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=DEFAULT_FORMAT,
              show_default=True,
              help="md: minutes for people; csv, json: every event of the log, for records.")
@click.option("--redis", "redis_url", default=None, metavar="URL",
              help="Redis URL of the servers (default: $LIVEHUB_REDIS_URL or $REDIS_URL).")
@click.option("--programme", default=None, metavar="FILE",
              help="Conference programme (TOML); default: $LIVEHUB_PROGRAMME or the sample.")
def export_command(room: str, fmt: str, redis_url: str | None, programme: str | None) -> None:
    """Write a session's transcript to standard output.

    ROOM is the session's slug. Reads the room's log from the Redis the servers
    share. A server on the in-memory broker keeps its rooms inside its own process:
    ask it over HTTP instead (GET /api/rooms/ROOM/transcript, moderator token).
    """
    cfg = _config(redis_url=redis_url, programme=programme)
    try:
        prog = load_programme(cfg.programme)
    except ProgrammeError as exc:
        raise click.ClickException(f"cannot read the programme:\n{exc}") from None
    session = prog.get(room)
    if session is None:
        known = ", ".join(s.slug for s in prog.sessions[:10])
        more = ", ..." if len(prog.sessions) > 10 else ""
        raise click.ClickException(f"no room {room!r} in the programme {prog.source} "
                                   f"(its rooms: {known}{more})")
    if not cfg.redis_url:
        raise click.ClickException(
            "no Redis configured (--redis URL, LIVEHUB_REDIS_URL or REDIS_URL), so this "
            "command cannot see a running server's rooms: on the in-memory broker they live "
            "inside the server process. Ask the server for the transcript instead:\n"
            f"  curl -H \"Authorization: Bearer $MODERATOR_TOKEN\" "
            f"\"http://HOST:PORT/api/rooms/{room}/transcript?format={fmt}\"")
    where = f"Redis at {_redact(cfg.redis_url)}"
    try:
        history = asyncio.run(_read_room_log(cfg, room))
    except (BrokerUnavailable, OSError, TimeoutError, ValueError) as exc:
        raise click.ClickException(f"cannot read room {room!r} from {where}: "
                                   f"{exc or type(exc).__name__}") from None
    if not history.events:
        click.echo(f"livehub: room {room!r} has no events in {where}", err=True)
    elif not history.complete:
        click.echo(f"livehub: room {room!r}: the log no longer reaches back to its start; "
                   f"the transcript begins at event {history.events[0]['seq']}", err=True)
    click.echo(render(fmt, RoomLog(room=room, events=history.events, epoch=history.epoch,
                                   complete=history.complete, session=session,
                                   conference=prog.title)), nl=False)


async def _archive(cfg: Config, prog: Any, dry_run: bool) -> list[Any] | None:
    from livehub import retention
    from livehub.broker import make_broker

    broker = make_broker(cfg.redis_url, max_log=cfg.max_log, redis_max_log=cfg.redis_max_log,
                         namespace=cfg.redis_namespace)
    await broker.start()
    try:
        if not broker.ready:
            raise BrokerUnavailable("not answering")
        return await retention.run_once(broker, prog, retain_after=cfg.retain_after,
                                        keep=cfg.retain_keep, dry_run=dry_run)
    finally:
        await broker.close()


@main.command("archive")
@click.option("--dry-run", is_flag=True, help="Say what would be archived; change nothing.")
@click.option("--redis", "redis_url", default=None, metavar="URL",
              help="Redis URL of the servers (default: $LIVEHUB_REDIS_URL or $REDIS_URL).")
@click.option("--programme", default=None, metavar="FILE",
              help="Conference programme (TOML); default: $LIVEHUB_PROGRAMME or the sample.")
def archive_command(dry_run: bool, redis_url: str | None, programme: str | None) -> None:
    """Archive and trim the logs of sessions that ended long ago (once; servers also do
    it every LIVEHUB_RETAIN_INTERVAL seconds).

    A room whose session ended more than LIVEHUB_RETAIN_AFTER seconds ago has its log
    copied into a compressed archive beside it in Redis, then cut to its last
    LIVEHUB_RETAIN_KEEP events; transcripts still read the whole record.
    """
    cfg = _config(redis_url=redis_url, programme=programme)
    try:
        prog = load_programme(cfg.programme)
    except ProgrammeError as exc:
        raise click.ClickException(f"cannot read the programme:\n{exc}") from None
    if not cfg.redis_url:
        raise click.ClickException(
            "no Redis configured (--redis URL, LIVEHUB_REDIS_URL or REDIS_URL): only the "
            "Redis log is archived; the in-memory broker's log is bounded already")
    if cfg.retain_after <= 0:
        click.echo("livehub: LIVEHUB_RETAIN_AFTER is 0: logs are never trimmed", err=True)
        return
    where = f"Redis at {_redact(cfg.redis_url)}"
    try:
        done = asyncio.run(_archive(cfg, prog, dry_run))
    except (BrokerUnavailable, OSError, TimeoutError, ValueError) as exc:
        raise click.ClickException(f"cannot archive in {where}: "
                                   f"{exc or type(exc).__name__}") from None
    if done is None:
        raise click.ClickException("another process is archiving now (the archiver lock "
                                   "is held); try again later")
    verb = "would archive" if dry_run else "archived"
    for a in done:
        click.echo(f"{a.room}: {verb} {a.archived} events, trim {a.trimmed}, "
                   f"keep {a.kept} (archive up to event {a.upto})")
    if not done:
        click.echo("livehub: no room's session ended long enough ago", err=True)


if __name__ == "__main__":
    main()
