"""The conference programme: sessions (rooms) loaded from a TOML file.

The file format is the one in PROTOCOL.md ("Programme file (TOML)")::

    [conference]
    title = "Councillors Connected"

    [[session]]
    slug = "day1-opening"           # the room id: [a-z0-9][a-z0-9-]{0,63}
    title = "Opening keynote"
    starts = 2009-04-06T10:00:00Z   # optional
    ends = 2009-04-06T11:00:00Z     # optional
    speakers = ["Cllr A. Example"]  # optional, display only; an entry may also be
                                    # {name = "Cllr B. Example", affiliation = "Eastmere DC"}
    description = "..."             # optional, display only
    guests = true                   # optional room settings, defaults shown
    premoderate = false
    slow_mode = 0

Validation is strict and reports every problem at once, one line each,
naming the file, the session (by slug, or by position such as
``session #3`` when it has no usable slug) and the field::

    prog.toml: session "day1-keynote": field "slow_mode": must be an integer >= 0 (got -5)

Rules worth knowing:

- ``starts`` and ``ends`` must be TOML date-times *with* an offset (``Z`` or
  ``+01:00``). Local date-times without an offset (``2009-04-06T10:00:00``)
  are rejected rather than guessed at: an organiser writing London summer
  time would otherwise get every session silently moved by an hour. Offsets
  are normalised to UTC. Quoted strings, dates without a time and times
  without a date are rejected too.
- ``ends`` must be later than ``starts`` when both are given.
- No coercion: ``guests``/``premoderate`` must be ``true``/``false`` (not
  ``"yes"`` or ``1``), ``slow_mode`` a whole number of seconds >= 0 (not
  ``true``, ``10.0`` or ``"10"``).
- Unknown keys (in a session, in ``[conference]`` or at the top level) are
  problems, since they are most likely typos (``slowmode``, ``[[sessions]]``).
- Slugs must be unique; a duplicate names both positions.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from livehub.auth import affiliation_problem
from livehub.signin_rules import SignInRules, parse_sign_in
from livehub.watchwords import EMPTY, Matcher, WordLists, parse_lists

__all__ = [
    "BUNDLED_SOURCE",
    "SLUG_RE",
    "Programme",
    "ProgrammeError",
    "Session",
    "bundled_path",
    "load_programme",
    "parse_programme",
]

#: A room id, as in PROTOCOL.md. Use with ``fullmatch``.
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")

#: The ``source`` of the programme loaded when no file is given.
BUNDLED_SOURCE = "<bundled sample>"

_SAMPLE_FILE = "sample_programme.toml"


# --------------------------------------------------------------------------
# Public data types


@dataclass(frozen=True)
class Session:
    """One conference session, served as one room named by its slug."""

    slug: str
    title: str
    starts: datetime | None
    ends: datetime | None
    speakers: tuple[str, ...]
    guests: bool = True
    premoderate: bool = False
    slow_mode: int = 0
    description: str = ""
    # One per speaker, in the same order: the badge shown beside the name ("" for none).
    affiliations: tuple[str, ...] = ()

    def affiliation(self, index: int) -> str:
        return self.affiliations[index] if index < len(self.affiliations) else ""
    # This session's own watched words, added to the conference's (never sent to clients).
    watched_words: WordLists = field(default_factory=WordLists)

    @property
    def day(self) -> date | None:
        """The (UTC) date the session starts on, or None when it has no start."""
        return self.starts.date() if self.starts is not None else None


@dataclass(frozen=True)
class Programme:
    """A conference: its title and sessions, in file order."""

    title: str
    sessions: tuple[Session, ...]
    source: str
    sign_in: SignInRules | None = None  # the [sign_in] table, when the file has one
    watched_words: WordLists = field(default_factory=WordLists)  # conference-wide
    _by_slug: dict[str, Session] = field(init=False, repr=False, compare=False)
    _matchers: dict[str, Matcher] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_slug: dict[str, Session] = {}
        for session in self.sessions:
            by_slug.setdefault(session.slug, session)
        object.__setattr__(self, "_by_slug", by_slug)
        # Compiled once per programme load; sessions without lists of their own share one.
        shared = Matcher(self.watched_words.block, self.watched_words.hold)
        matchers: dict[str, Matcher] = {}
        for slug, session in by_slug.items():
            own = session.watched_words
            matchers[slug] = shared if not own else Matcher(
                self.watched_words.block + own.block, self.watched_words.hold + own.hold)
        object.__setattr__(self, "_matchers", matchers)

    def matcher(self, slug: str) -> Matcher:
        """The watched-words matcher of the session ``slug`` (an empty one if unknown)."""
        return self._matchers.get(slug, EMPTY)

    def get(self, slug: str) -> Session | None:
        """The session with this slug, or None."""
        return self._by_slug.get(slug)

    def days(self) -> list[tuple[date | None, list[Session]]]:
        """Sessions grouped by day, days in order, each day's sessions by start.

        Sessions with the same start keep their file order. Sessions without
        a start come last, grouped under ``None``.
        """
        groups: dict[date | None, list[Session]] = {}
        for session in self.sessions:
            groups.setdefault(session.day, []).append(session)
        ordered_days = sorted(d for d in groups if d is not None)
        result: list[tuple[date | None, list[Session]]] = [
            (d, sorted(groups[d], key=_start_key)) for d in ordered_days
        ]
        if None in groups:
            result.append((None, groups[None]))
        return result


def _start_key(session: Session) -> datetime:
    assert session.starts is not None
    return session.starts


class ProgrammeError(Exception):
    """A programme file could not be loaded; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


# --------------------------------------------------------------------------
# Loading


def bundled_path() -> Path:
    """Path of the sample programme shipped with the package."""
    return Path(__file__).resolve().with_name(_SAMPLE_FILE)


def load_programme(path: str | Path | None = None) -> Programme:
    """Load and validate a programme file; ``None`` loads the bundled sample.

    Raises ProgrammeError naming every problem found.
    """
    if path is None:
        file_path = bundled_path()
        source = BUNDLED_SOURCE
    else:
        file_path = Path(path)
        source = str(path)
    try:
        data = file_path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ProgrammeError([f"{source}: cannot read file: {reason}"]) from None
    try:
        # utf-8-sig: tolerate the byte order mark some Windows editors add.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ProgrammeError(
            [f"{source}: line {line}: not valid UTF-8 text (save the file as UTF-8)"]
        ) from None
    return parse_programme(text, source)


def parse_programme(text: str, source: str) -> Programme:
    """Parse and validate programme TOML; ``source`` names it in problems.

    Raises ProgrammeError naming every problem found.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProgrammeError([_syntax_problem(source, exc)]) from None
    problems: list[str] = []
    title = _check_conference(document, source, problems)
    _check_top_level_keys(document, source, problems)
    watched = _check_watched_words(document, source, problems)
    sessions = _check_sessions(document, source, problems)
    sign_in = _check_sign_in(document, source, problems)
    if problems or title is None:
        raise ProgrammeError(problems)
    return Programme(title=title, sessions=tuple(sessions), source=source, sign_in=sign_in,
                     watched_words=watched)


# --------------------------------------------------------------------------
# Validation models (pydantic, strict: no coercion at all)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


_Text = Annotated[str, AfterValidator(_not_blank)]


def _one_line_badge(value: str) -> str:
    problem = affiliation_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class _SpeakerModel(BaseModel):
    """A speaker with a badge: ``{name = "...", affiliation = "..."}``."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: _Text
    affiliation: Annotated[str, AfterValidator(_one_line_badge)]


class _ConferenceModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    title: _Text


class _SessionModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    slug: str
    title: _Text
    starts: AwareDatetime | None = None
    ends: AwareDatetime | None = None
    speakers: list[_Text | _SpeakerModel] = Field(default_factory=list)
    description: str = ""
    guests: bool = True
    premoderate: bool = False
    slow_mode: int = Field(default=0, ge=0)
    watched_words: Any = None  # checked by livehub.watchwords.parse_lists

    @field_validator("slug")
    @classmethod
    def _slug_pattern(cls, value: str) -> str:
        if SLUG_RE.fullmatch(value) is None:
            raise ValueError("bad slug")
        return value

    @field_validator("starts", "ends")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None


_SESSION_FIELDS = tuple(_SessionModel.model_fields)
_CONFERENCE_FIELDS = tuple(_ConferenceModel.model_fields)
_TOP_LEVEL_KEYS = ("conference", "session", "sign_in", "watched_words")

# What each field must be, said the same way whatever went wrong.
_EXPECTED: dict[str, str] = {
    "slug": (
        "must match [a-z0-9][a-z0-9-]{0,63} (1 to 64 lower-case letters, digits or hyphens, "
        "not starting with a hyphen)"
    ),
    "title": "must be a non-empty string",
    "starts": "must be a TOML date-time with a UTC offset, e.g. 2009-04-06T10:00:00Z",
    "ends": "must be a TOML date-time with a UTC offset, e.g. 2009-04-06T11:00:00Z",
    "speakers": ('must be a list of names, e.g. ["Cllr A. Example"], each name or '
                 '{name = "...", affiliation = "..."} (an affiliation of 1 to 80 '
                 'characters on one line)'),
    "description": "must be a string",
    "guests": "must be true or false",
    "premoderate": "must be true or false",
    "slow_mode": "must be an integer >= 0",
}

_MISSING: dict[str, str] = {
    "slug": 'missing: every session needs a slug, its room id (e.g. "day1-opening")',
    "title": "missing: a title is required",
}


# --------------------------------------------------------------------------
# Checks


def _syntax_problem(source: str, exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    where = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if where is not None:
        detail = message[: where.start()]
        return f"{source}: line {where[1]}, column {where[2]}: invalid TOML: {detail}"
    end = re.search(r"\s*\(at end of document\)$", message)
    if end is not None:
        return f"{source}: at end of file: invalid TOML: {message[: end.start()]}"
    return f"{source}: invalid TOML: {message}"


def _check_top_level_keys(document: Mapping[str, Any], source: str, problems: list[str]) -> None:
    for key in document:
        if key not in _TOP_LEVEL_KEYS:
            hint = _hint(key, _TOP_LEVEL_KEYS)
            problems.append(f"{source}: unknown top-level key {_quote(key)}{hint}")


def _check_sign_in(document: Mapping[str, Any], source: str,
                   problems: list[str]) -> SignInRules | None:
    if "sign_in" not in document:
        return None
    if not isinstance(document["sign_in"], dict):
        problems.append(f"{source}: sign_in: must be a table ([sign_in]) "
                        f"(got {_show(document['sign_in'])})")
        return None
    rules, found = parse_sign_in(document["sign_in"])
    problems.extend(f"{source}: sign_in: field {_quote(name)}: {problem}"
                    for name, problem in found)
    return rules


def _check_conference(document: Mapping[str, Any], source: str, problems: list[str]) -> str | None:
    where = f"{source}: [conference]"
    if "conference" not in document:
        problems.append(f'{where}: missing: add a [conference] table with a title = "..."')
        return None
    raw = document["conference"]
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a table ([conference]) (got {_show(raw)})")
        return None
    try:
        return _ConferenceModel.model_validate(raw).title
    except ValidationError as exc:
        found = _field_problems(raw, exc, _CONFERENCE_FIELDS)
        problems.extend(_format_problems(where, found, _CONFERENCE_FIELDS))
        return None


def _check_sessions(document: Mapping[str, Any], source: str, problems: list[str]) -> list[Session]:
    raw = document.get("session")
    if raw is None:
        problems.append(f"{source}: no sessions: add at least one [[session]] table")
        return []
    if isinstance(raw, dict):
        problems.append(
            f"{source}: [session] must be written [[session]] (an array of tables, one per session)"
        )
        return []
    if not isinstance(raw, list):
        problems.append(
            f'{source}: "session" must be written as [[session]] tables (got {_show(raw)})'
        )
        return []
    if not raw:
        problems.append(f"{source}: no sessions: add at least one [[session]] table")
        return []

    # Positions (1-based) of each syntactically valid slug, to spot duplicates
    # and to decide how to name each session.
    positions: dict[str, list[int]] = {}
    for number, entry in enumerate(raw, start=1):
        slug = entry.get("slug") if isinstance(entry, dict) else None
        if isinstance(slug, str) and SLUG_RE.fullmatch(slug):
            positions.setdefault(slug, []).append(number)

    sessions: list[Session] = []
    for number, entry in enumerate(raw, start=1):
        where = f"{source}: {_session_label(entry, number, positions)}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a [[session]] table (got {_show(entry)})")
            continue
        found: list[tuple[str, str]] = []  # (field, problem)
        model: _SessionModel | None = None
        try:
            model = _SessionModel.model_validate(entry)
        except ValidationError as exc:
            found.extend(_field_problems(entry, exc, _SESSION_FIELDS))
        found.extend(_check_times(entry))
        own = WordLists()
        if entry.get("watched_words") is not None:
            own, word_problems = parse_lists(entry["watched_words"])
            found.extend(word_problems)
        slug = entry.get("slug")
        if isinstance(slug, str) and len(positions.get(slug, ())) > 1:
            first = positions[slug][0]
            if number != first:
                found.append(
                    ("slug", f"duplicate slug {_quote(slug)}: session #{first} already uses it")
                )
        problems.extend(_format_problems(where, found, _SESSION_FIELDS))
        if model is not None and not found:
            sessions.append(
                Session(
                    slug=model.slug,
                    title=model.title,
                    starts=model.starts,
                    ends=model.ends,
                    speakers=tuple(s if isinstance(s, str) else s.name
                                   for s in model.speakers),
                    affiliations=_affiliations(model.speakers),
                    guests=model.guests,
                    premoderate=model.premoderate,
                    slow_mode=model.slow_mode,
                    description=model.description,
                    watched_words=own,
                )
            )
    return sessions


def _affiliations(speakers: Sequence[str | _SpeakerModel]) -> tuple[str, ...]:
    """Each speaker's badge ("" for none); empty when nobody has one."""
    badges = tuple("" if isinstance(s, str) else s.affiliation for s in speakers)
    return badges if any(badges) else ()


def _check_watched_words(document: Mapping[str, Any], source: str,
                         problems: list[str]) -> WordLists:
    """The conference-wide ``[watched_words]`` lists (none when absent)."""
    raw = document.get("watched_words")
    if raw is None:
        return WordLists()
    lists, found = parse_lists(raw)
    problems.extend(f"{source}: [watched_words]: field {_quote(name)}: {why}"
                    for name, why in found)
    return lists


def _session_label(entry: object, number: int, positions: Mapping[str, list[int]]) -> str:
    """``session "slug"`` for a valid, unique slug, else by position."""
    slug = entry.get("slug") if isinstance(entry, dict) else None
    if isinstance(slug, str) and slug in positions:
        if len(positions[slug]) == 1:
            return f"session {_quote(slug)}"
        return f"session #{number} ({_quote(slug)})"
    return f"session #{number}"


def _check_times(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    starts, ends = _aware(entry.get("starts")), _aware(entry.get("ends"))
    if starts is not None and ends is not None and ends <= starts:
        return [("ends", f"must be later than starts (starts {_show(starts)}, ends {_show(ends)})")]
    return []


def _aware(value: object) -> datetime | None:
    """The value if it is a datetime with an offset (comparable), else None."""
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value
    return None


def _format_problems(
    where: str, found: Sequence[tuple[str, str]], known: Sequence[str]
) -> list[str]:
    """One line per problem, in the order the fields are documented, unknown keys last."""
    order = {name: i for i, name in enumerate(known)}
    ranked = sorted(found, key=lambda item: order.get(item[0], len(order)))
    return [f"{where}: field {_quote(name)}: {problem}" for name, problem in ranked]


def _field_problems(
    raw: Mapping[str, Any], exc: ValidationError, known: Sequence[str]
) -> list[tuple[str, str]]:
    """Turn pydantic's errors into one problem per field."""
    by_field: dict[str, str] = {}
    for error in exc.errors():
        loc = error["loc"]
        if not loc:
            continue
        name = str(loc[0])
        if name in by_field:
            continue
        kind = error["type"]
        if kind == "extra_forbidden":
            by_field[name] = f"unknown field{_hint(name, known)}"
        elif kind == "missing":
            by_field[name] = _MISSING.get(name, "missing")
        else:
            by_field[name] = _field_problem(name, raw[name], kind, loc[1:])
    return list(by_field.items())


def _field_problem(name: str, value: object, kind: str, rest: tuple[int | str, ...]) -> str:
    expected = _EXPECTED.get(name, "has the wrong type")
    if name in ("starts", "ends"):
        if kind == "timezone_aware":
            return (
                f"{expected}; a time without an offset is ambiguous: add Z for UTC "
                f"(got {_show(value)})"
            )
        if isinstance(value, str):
            return f"{expected}, written without quotes (got {_show(value)})"
    if name == "speakers" and isinstance(value, list) and rest and isinstance(rest[0], int):
        index = rest[0]
        if index < len(value):
            item = value[index]
            what = ("must not be empty" if isinstance(item, str) else
                    "needs a name and an affiliation" if isinstance(item, dict) else
                    "must be a string")
            return f"{expected}: item {index + 1} {what} (got {_show(item)})"
    return f"{expected} (got {_show(value)})"


# --------------------------------------------------------------------------
# Formatting helpers


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _hint(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {_quote(close[0])}?)" if close else ""


def _show(value: object, limit: int = 60) -> str:
    """A TOML-like rendering of a parsed value, shortened for messages."""
    text = _toml_literal(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _toml_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "a table"
    return repr(value)
