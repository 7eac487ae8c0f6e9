"""Transcripts of a room: Markdown minutes, and the complete log as CSV or JSON.

Pure functions over plain data: a room's logged events (as :meth:`Broker.read`
returns them, each with its ``seq``) and its programme :class:`Session`. No I/O,
no clock: the same log always gives the same bytes.

* **Markdown** (``md``) is fit for a council's minutes: the session's title,
  time and speakers, the questions with their votes and answers (those taken on
  stage first, in the order they went on stage, then the rest by votes), the
  pinned posts, the chat (replies marked), and a "Moderation" section saying who
  muted, removed, banned or pinned what and when. Removed posts and questions
  are left out of the public parts (a placeholder in the chat, a count under
  the questions), and anonymous askers stay anonymous there; the moderation
  section names a person only when a moderator acted on them. All times UTC.
* **CSV** and **JSON** are the moderators' complete record: every event of the
  log, one row or object each, with its ``seq`` and every key, including the
  text of removed posts and who asked anonymously. Handle them accordingly.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from livehub import events
from livehub import export_extras as extras
from livehub.programme import Session

Event = dict[str, Any]

FORMATS: Final = ("md", "csv", "json")
DEFAULT_FORMAT: Final = "md"
MEDIA_TYPES: Final = {
    "md": "text/markdown; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
CSV_COLUMNS: Final = (
    "seq", "ts", "type", "uid", "name", "role", "text", "mid", "qid", "reply_to", "state",
    "prev", "up", "until", "by", "by_name", "of", "of_name", "extra",
)
JSON_VERSION: Final = 1

REMOVED_BY_MODERATOR: Final = "[removed by a moderator]"
REMOVED_BY_AUTHOR: Final = "[removed by its author]"


@dataclass(frozen=True, slots=True)
class RoomLog:
    """What a transcript is made from: a room's events, oldest first, and its session.

    ``complete`` is False when the log no longer reaches back to its first event
    (a trimmed log); ``events`` then start wherever the log now starts.
    """

    room: str
    events: Sequence[Event]
    epoch: str = ""
    complete: bool = True
    session: Session | None = None
    conference: str = ""

    @property
    def title(self) -> str:
        return self.session.title if self.session is not None else self.room


def render(fmt: str, log: RoomLog) -> str:
    """The transcript of ``log`` in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "md":
        return to_markdown(log)
    if fmt == "csv":
        return to_csv(log)
    if fmt == "json":
        return to_json(log)
    raise ValueError(f"unknown transcript format {fmt!r}: use one of {', '.join(FORMATS)}")


def filename(room: str, fmt: str) -> str:
    """The download name, e.g. ``day1-opening-transcript.md`` (slugs are file-name safe)."""
    return f"{room}-transcript.{fmt}"


# --- time ---------------------------------------------------------------------


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1000, UTC)


def iso(ts: int) -> str:
    """ms since the epoch -> ``2009-04-06T09:01:05.123Z``."""
    return _dt(ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _day(value: datetime) -> str:
    return f"{value:%A} {value.day} {value:%B %Y}"


def _hm(value: datetime) -> str:
    return f"{value:%H:%M}"


def _duration(ms: int) -> str:
    seconds = max(0, round(ms / 1000))
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n} {unit}{'' if n == 1 else 's'}")
    return " ".join(parts[:2]) or "0 seconds"


def session_time(session: Session | None) -> str:
    """``Monday 6 April 2009, 09:00 to 10:00 UTC``, or "not scheduled"."""
    if session is None or session.starts is None:
        return "not scheduled"
    starts = session.starts.astimezone(UTC)
    if session.ends is None:
        return f"{_day(starts)}, from {_hm(starts)} UTC"
    ends = session.ends.astimezone(UTC)
    if ends.date() == starts.date():
        return f"{_day(starts)}, {_hm(starts)} to {_hm(ends)} UTC"
    return f"{_day(starts)} {_hm(starts)} to {_day(ends)} {_hm(ends)} UTC"


class _Clock:
    """Human-readable UTC times; the date is shown only when the record spans days."""

    def __init__(self, stamps: Iterable[int]) -> None:
        days = {_dt(ts).date() for ts in stamps}
        self.multi_day = len(days) > 1

    def __call__(self, ts: int) -> str:
        value = _dt(ts)
        if self.multi_day:
            return f"{value.day} {value:%b %Y} {value:%H:%M:%S}"
        return f"{value:%H:%M:%S}"


# --- Markdown text --------------------------------------------------------------

_INLINE = re.compile(r"([\\`*_\[\]<>|~])")
_LINE_START = re.compile(r"^(\s*)(?:([#>+=-])|(\d+)([.)]))")


def md_escape(text: str) -> str:
    """One line of user text as inert Markdown: no links, emphasis, HTML or headings."""
    text = _INLINE.sub(r"\\\1", text)
    return _LINE_START.sub(_escape_line_start, text)


def _escape_line_start(m: re.Match[str]) -> str:
    if m.group(2) is not None:  # a heading, quote, list or setext marker
        return f"{m.group(1)}\\{m.group(2)}"
    return f"{m.group(1)}{m.group(3)}\\{m.group(4)}"  # an ordered list marker: 2\.


def md_text(text: str, indent: str = "  ") -> str:
    """User text, possibly several lines, as the rest of a list item's paragraph."""
    lines = [md_escape(line) for line in text.replace("\r\n", "\n").replace("\r", "\n")
             .split("\n") if line.strip()]
    return ("  \n" + indent).join(lines)


# --- folding the log into minutes ------------------------------------------------------


@dataclass(slots=True)
class _Post:
    ev: Event
    removed: str | None = None  # the placeholder once removed
    pinned: bool = False
    held: bool = False  # held by the watched words: in no public part until released

    @property
    def mid(self) -> str:
        return str(self.ev["mid"])


@dataclass(slots=True)
class _Question:
    ev: Event
    state: str
    public: bool
    voters: set[str] = field(default_factory=set)
    answers: list[Event] = field(default_factory=list)
    staged: int | None = None  # seq at which it first went on stage
    staged_ts: int | None = None
    removed: bool = False

    @property
    def anonymous(self) -> bool:
        return bool(self.ev.get("anonymous"))


@dataclass(slots=True)
class _Poll:
    ev: Event
    state: str
    ballots: dict[str, tuple[int, ...]] = field(default_factory=dict)  # uid -> choices

    @property
    def options(self) -> list[str]:
        return [str(o) for o in self.ev.get("options") or []]

    @property
    def counts(self) -> list[int]:
        counts = [0] * len(self.options)
        for choices in self.ballots.values():
            for c in choices:
                if 0 <= c < len(counts):
                    counts[c] += 1
        return counts


@dataclass(slots=True)
class _Settings:
    slow_mode: int = 0
    guests: bool = True
    premoderate: bool = False
    open: bool = True


@dataclass(slots=True)
class _Minutes:
    clock: _Clock
    settings: _Settings
    posts: dict[str, _Post] = field(default_factory=dict)
    questions: dict[str, _Question] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # uid -> last public name
    moderation: list[str] = field(default_factory=list)
    votes: int = 0
    polls: dict[str, _Poll] = field(default_factory=dict)
    # who asked anonymously in this session: named nowhere in the Markdown
    unnamed: frozenset[str] = frozenset()


UNNAMED: Final = "a participant"
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def one_line(name: str) -> str:
    """A name as one line with no bidirectional controls, whatever an old log holds."""
    return _NOT_ONE_LINE.sub(" ", name)


def _person(uid: object, name: object) -> str:
    """A person named in the moderation record: ``Name (uid)``."""
    shown = md_escape(one_line(str(name))) if name else "someone"
    return f"{shown} ({md_escape(one_line(str(uid)))})" if uid else shown


def anonymous_askers(events: Iterable[Event]) -> set[str]:
    """Everyone who asked a question anonymously in the session: the Markdown record
    (and so the public record page) never names them, not even in its Moderation
    section, where naming the person a moderator acted on would unmask the question."""
    return {str(ev["uid"]) for ev in events
            if ev.get("t") == "q" and ev.get("anonymous") and ev.get("uid")}


class _Folder:
    """One pass over the events, building what the Markdown sections need."""

    def __init__(self, log: RoomLog) -> None:
        self.unnamed = anonymous_askers(log.events)
        s = log.session
        settings = _Settings() if s is None else _Settings(s.slow_mode, s.guests, s.premoderate)
        self.m = _Minutes(_Clock(int(ev.get("ts", 0)) for ev in log.events), settings,
                          unnamed=frozenset(self.unnamed))
        self.reports = extras.Reports()
        self.reactions = extras.Reactions()
        handlers: dict[object, Callable[[Event], None]] = {
            "msg": self._on_msg, "q": self._on_q, "vote": self._on_vote,
            "answer": self._on_answer, "qstate": self._on_qstate, "pin": self._on_pin,
            "unpin": self._on_unpin, "del": self._on_del, "mute": self._on_mute,
            "unmute": self._on_unmute, "ban": self._on_ban, "unban": self._on_unban,
            "room": self._on_room, "poll": self._on_poll, "ballot": self._on_ballot,
            "pollstate": self._on_pollstate, "report": self._on_report,
            "resolved": self.reports.on_resolved, "react": self._on_react,
        }
        for ev in log.events:
            handler = handlers.get(ev.get("t"))
            # An event whose keys do not fit its type (livehub.events) is left out, as
            # room.apply leaves it out of the room's state.
            if handler is not None and events.problem(ev) is None:
                handler(ev)

    def _on_poll(self, ev: Event) -> None:
        self.m.polls[str(ev.get("pid"))] = _Poll(ev, state=str(ev.get("state", "open")))

    def _on_ballot(self, ev: Event) -> None:
        poll = self.m.polls.get(str(ev.get("pid")))
        if poll is not None:
            poll.ballots[str(ev.get("uid"))] = tuple(int(c) for c in ev.get("choices") or ())

    def _on_pollstate(self, ev: Event) -> None:
        poll = self.m.polls.get(str(ev.get("pid")))
        if poll is not None:
            poll.state = str(ev.get("state"))

    def _who(self, uid: object, name: object) -> str:
        return UNNAMED if str(uid) in self.unnamed else _person(uid, name)

    def _actor(self, ev: Event) -> str:
        return self._who(ev.get("by"), ev.get("by_name"))

    def _author(self, post: _Post) -> str:
        return self._who(post.ev.get("uid"), post.ev.get("name"))

    def _asker(self, q: _Question) -> str:
        return self._who(q.ev.get("uid"), q.ev.get("name"))

    def _note(self, ev: Event, what: str) -> None:
        self.m.moderation.append(f"{self.m.clock(int(ev.get('ts', 0)))} {what}.")

    def _post_ref(self, mid: object) -> str:
        post = self.m.posts.get(str(mid))
        if post is None:
            return "a post from before this record"
        return f"a post by {self._author(post)} from {self.m.clock(int(post.ev.get('ts', 0)))}"

    def _on_msg(self, ev: Event) -> None:
        mid = str(ev["mid"])
        if "by" in ev:  # a held post released: in the chat where it was released
            held = self.m.posts.pop(mid, None)
            if held is None or not held.held:
                return
            self._note(ev, f"{self._actor(ev)} released a held post by {self._author(held)}")
        self.m.posts[mid] = _Post(ev, held=bool(ev.get("held")))
        self.m.names[str(ev["uid"])] = str(ev.get("name", ""))

    def _on_react(self, ev: Event) -> None:
        self.reactions.fold(ev)

    def _on_report(self, ev: Event) -> None:
        if "mid" in ev:
            post = self.m.posts.get(str(ev["mid"]))
            ts = None if post is None else int(post.ev.get("ts", 0))
        else:
            q = self.m.questions.get(str(ev.get("qid")))
            ts = None if q is None else int(q.ev.get("ts", 0))
        self.reports.on_report(ev, ts)

    def _on_q(self, ev: Event) -> None:
        self.m.questions[str(ev["qid"])] = _Question(
            ev, state=str(ev.get("state", "open")), public=ev.get("state") != "pending")
        if not ev.get("anonymous") and ev.get("uid"):
            self.m.names[str(ev["uid"])] = str(ev.get("name", ""))

    def _on_vote(self, ev: Event) -> None:
        q = self.m.questions.get(str(ev.get("qid")))
        if q is None:
            return
        self.m.votes += 1
        if ev.get("up"):
            q.voters.add(str(ev.get("uid")))
        else:
            q.voters.discard(str(ev.get("uid")))

    def _on_answer(self, ev: Event) -> None:
        q = self.m.questions.get(str(ev.get("qid")))
        if q is not None:
            q.answers.append(ev)

    def _on_qstate(self, ev: Event) -> None:
        q = self.m.questions.get(str(ev.get("qid")))
        if q is None:
            return
        new, prev = str(ev.get("state")), ev.get("prev", q.state)
        q.state = new
        if new == "answering" and q.staged is None:
            q.staged, q.staged_ts = int(ev["seq"]), int(ev.get("ts", 0))
        if prev == "pending":
            if new == "dismissed":
                self._note(ev, f"{self._actor(ev)} declined a question awaiting approval "
                               f"from {self._asker(q)}")
            elif new != "pending":
                q.public = True
                self._note(ev, f"{self._actor(ev)} approved a question from {self._asker(q)}")
        elif new == "dismissed":
            self._note(ev, f"{self._actor(ev)} dismissed a question from {self._asker(q)}")

    def _on_pin(self, ev: Event) -> None:
        post = self.m.posts.get(str(ev.get("mid")))
        if post is not None:
            post.pinned = True
        self._note(ev, f"{self._actor(ev)} pinned {self._post_ref(ev.get('mid'))}")

    def _on_unpin(self, ev: Event) -> None:
        post = self.m.posts.get(str(ev.get("mid")))
        if post is not None:
            post.pinned = False
        self._note(ev, f"{self._actor(ev)} unpinned {self._post_ref(ev.get('mid'))}")

    def _on_del(self, ev: Event) -> None:
        self.reports.on_del(ev)
        own = ev.get("by") is not None and ev.get("by") == ev.get("of")
        if "mid" in ev:
            ref = self._post_ref(ev["mid"])
            post = self.m.posts.get(str(ev["mid"]))
            if post is not None:
                post.removed = REMOVED_BY_AUTHOR if own else REMOVED_BY_MODERATOR
                post.pinned = False
                post.held = False  # a rejected held post is listed as removed
            if own:
                self._note(ev, f"{self._actor(ev)} removed their own post")
            else:
                self._note(ev, f"{self._actor(ev)} removed {ref}")
            return
        q = self.m.questions.get(str(ev.get("qid")))
        waiting = " awaiting approval" if ev.get("pending") else ""
        if q is None:
            self._note(ev, f"{self._actor(ev)} removed a question{waiting} from before this record")
            return
        q.removed = True
        if own and q.anonymous:
            self._note(ev, f"The asker of an anonymous question{waiting} withdrew it")
        elif own:
            self._note(ev, f"{self._actor(ev)} withdrew their own question{waiting}")
        else:
            self._note(ev, f"{self._actor(ev)} removed a question{waiting} from {self._asker(q)}")

    def _target(self, ev: Event) -> str:
        uid = ev.get("uid")
        return self._who(uid, ev.get("name") or self.m.names.get(str(uid), ""))

    def _on_mute(self, ev: Event) -> None:
        until = ev.get("until")
        if until is None:
            how = "until a moderator lifts it"
        else:
            how = (f"for {_duration(int(until) - int(ev.get('ts', 0)))} "
                   f"(until {self.m.clock(int(until))})")
        self._note(ev, f"{self._actor(ev)} muted {self._target(ev)} {how}")

    def _on_unmute(self, ev: Event) -> None:
        self._note(ev, f"{self._actor(ev)} lifted the mute on {self._target(ev)}")

    def _on_ban(self, ev: Event) -> None:
        self._note(ev, f"{self._actor(ev)} banned {self._target(ev)} from the room")

    def _on_unban(self, ev: Event) -> None:
        self._note(ev, f"{self._actor(ev)} lifted the ban on {self._target(ev)}")

    def _on_room(self, ev: Event) -> None:
        old = self.m.settings
        raw = ev.get("settings") or {}
        new = _Settings(
            slow_mode=int(raw.get("slow_mode", old.slow_mode)),
            guests=bool(raw.get("guests", old.guests)),
            premoderate=bool(raw.get("premoderate", old.premoderate)),
            open=ev.get("state", "open" if old.open else "closed") == "open",
        )
        changes = []
        if new.open != old.open:
            changes.append("opened the room" if new.open else "closed the room")
        if new.slow_mode != old.slow_mode:
            changes.append(f"set slow mode to {new.slow_mode} s" if new.slow_mode
                           else "turned slow mode off")
        if new.guests != old.guests:
            changes.append("let guests join" if new.guests else "stopped guests joining")
        if new.premoderate != old.premoderate:
            changes.append("turned question approval on" if new.premoderate
                           else "turned question approval off")
        self.m.settings = new
        if changes:
            self._note(ev, f"{self._actor(ev)} {_and(changes)}")


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


# --- Markdown ------------------------------------------------------------------------


def _speaker(ev: Event, unnamed: frozenset[str] = frozenset()) -> str:
    """How the author of a post or answer is shown in the public parts (someone who
    asked anonymously in the session is "a participant" there too: the minutes never
    name them, so that nothing in them can be set beside the anonymous question)."""
    if str(ev.get("uid")) in unnamed:
        return UNNAMED
    name = md_escape(one_line(str(ev.get("name", ""))))
    role = ev.get("role")
    if ev.get("affiliation") and not ev.get("guest"):  # a signed-in person's badge
        name += f", {md_escape(one_line(str(ev['affiliation'])))}"
    if ev.get("guest"):
        return f"{name} (guest)"
    if role in ("speaker", "moderator"):
        return f"{name} ({role})"
    return name


def _question_order(questions: Iterable[_Question]) -> list[_Question]:
    """Taken on stage first, in the order they went on stage; the rest by votes, then age."""
    qs = list(questions)
    staged = sorted((q for q in qs if q.staged is not None), key=lambda q: q.staged or 0)
    rest = sorted((q for q in qs if q.staged is None),
                  key=lambda q: (-len(q.voters), int(q.ev.get("seq", 0))))
    return staged + rest


_STATE_WORDS: Final = {
    "open": "not answered on stage",
    "answering": "on stage when the record ends",
    "answered": "answered",
    "dismissed": "dismissed",
}


def _questions_section(m: _Minutes) -> list[str]:
    out = ["## Questions", ""]
    public = [q for q in m.questions.values() if q.public and not q.removed]
    removed = sum(1 for q in m.questions.values() if q.removed and q.public)
    unapproved = sum(1 for q in m.questions.values() if not q.public and not q.removed)
    if public:
        out += ["Questions taken on stage come first, in the order they were taken; "
                "the others follow by votes.", ""]
    elif removed or unapproved:
        out += ["No questions to show.", ""]
    else:
        out += ["No questions were asked.", ""]
    for number, q in enumerate(_question_order(public), start=1):
        ev = q.ev
        who = "anonymously" if q.anonymous else f"by {_speaker(ev, m.unnamed)}"
        lead = f"{number}. "
        pad = " " * len(lead)
        out.append(f"{lead}“{md_text(str(ev.get('text', '')), pad)}”  ")
        facts = [f"Asked {who} at {m.clock(int(ev.get('ts', 0)))}",
                 _plural(len(q.voters), "vote"), _STATE_WORDS.get(q.state, q.state)]
        if q.staged_ts is not None:
            facts.append(f"taken on stage at {m.clock(q.staged_ts)}")
        out.append(f"{pad}{'; '.join(facts)}.")
        for answer in q.answers:
            text = md_text(str(answer.get("text", "")), pad + "  ")
            out.append(f"{pad}- Answer from {_speaker(answer, m.unnamed)} at "
                       f"{m.clock(int(answer.get('ts', 0)))}: {text}")
        out.append("")
    notes = []
    if removed:
        notes.append(f"{_plural(removed, 'question was', 'questions were')} removed "
                     "(see Moderation) and not shown")
    if unapproved:
        notes.append(f"{_plural(unapproved, 'question', 'questions')} awaiting approval "
                     "or declined, never shown in the room, not listed")
    if notes:
        out += [f"_{'; '.join(notes)}._", ""]
    return out


def _polls_section(m: _Minutes) -> list[str]:
    """Each poll with its options and final counts; never who chose what."""
    if not m.polls:
        return []
    out = ["## Polls", ""]
    for number, poll in enumerate(m.polls.values(), start=1):
        ev = poll.ev
        lead = f"{number}. "
        pad = " " * len(lead)
        out.append(f"{lead}“{md_text(str(ev.get('question', '')), pad)}”  ")
        kind = "several answers allowed" if ev.get("multi") else "one answer each"
        state = "open when the record ends" if poll.state == "open" else "closed"
        out.append(f"{pad}Opened at {m.clock(int(ev.get('ts', 0)))}; {kind}; {state}; "
                   f"{_plural(len([b for b in poll.ballots.values() if b]), 'person', 'people')} "
                   "voted.")
        for option, count in zip(poll.options, poll.counts, strict=True):
            out.append(f"{pad}- {md_text(option, pad + '  ')}: {_plural(count, 'vote')}")
        out.append("")
    return out


def _post_line(m: _Minutes, post: _Post) -> str:
    ev = post.ev
    when = m.clock(int(ev.get("ts", 0)))
    if post.removed is not None:
        return f"- {when} {post.removed}"
    text = md_text(str(ev.get("text", "")), "  ")
    if ev.get("announcement"):
        who = f"Announcement from {_speaker(ev, m.unnamed)}"
    else:
        who = _speaker(ev, m.unnamed)
    reply_to = ev.get("reply_to")
    if reply_to is not None:
        target = m.posts.get(str(reply_to))
        if target is None:
            who += ", replying to a post from before this record"
        elif target.removed is not None:
            who += ", replying to a removed post"
        else:
            who += (f", replying to {_speaker(target.ev, m.unnamed)} at "
                    f"{m.clock(int(target.ev.get('ts', 0)))}")
    return f"- {when} {who}: {text}"


def to_markdown(log: RoomLog) -> str:
    """Minutes of the room, in Markdown (see the module's docstring)."""
    folder = _Folder(log)
    m = folder.m
    events = log.events
    session = log.session
    out = [f"# {md_escape(log.title)}", ""]
    where = f"Transcript of the livehub room `{log.room}`"
    out += [f"{where}, {md_escape(log.conference)}." if log.conference else f"{where}.", ""]
    out.append(f"- **When:** {session_time(session)}")
    if session is not None and session.speakers:
        named = [f"{s} ({session.affiliation(i)})" if session.affiliation(i) else s
                 for i, s in enumerate(session.speakers)]
        out.append(f"- **Speakers:** {', '.join(md_escape(s) for s in named)}")
    posts = [p for p in m.posts.values() if not p.held]
    removed_posts = sum(1 for p in posts if p.removed is not None)
    public_qs = [q for q in m.questions.values() if q.public]
    removed_qs = sum(1 for q in public_qs if q.removed)
    people = {str(ev.get("uid")) for ev in events
              if ev.get("t") in ("msg", "q", "vote", "ballot") and ev.get("uid")}
    if events:
        first, last = int(events[0].get("ts", 0)), int(events[-1].get("ts", 0))
        span = (f"{_day(_dt(first))}, {m.clock(first)} to {m.clock(last)}"
                if not m.clock.multi_day else f"{m.clock(first)} to {m.clock(last)}")
        out.append(f"- **Record:** events {events[0].get('seq')} to {events[-1].get('seq')}, "
                   f"{span} UTC")
    else:
        out.append("- **Record:** nothing happened in this room")
    out.append(f"- **Activity:** {_plural(len(posts), 'post')} ({removed_posts} removed), "
               f"{_plural(len(public_qs), 'question')} ({removed_qs} removed), "
               f"{_plural(m.votes, 'vote')} cast, "
               f"{_plural(len(people), 'person', 'people')} took part")
    out.append("- All times are UTC.")
    out.append("")
    if not log.complete:
        start = events[0].get("seq") if events else "?"
        out += [f"> Note: the room's log no longer reaches back to its start. This record "
                f"begins at event {start}; earlier events are not in it.", ""]

    out += _questions_section(m)
    out += _polls_section(m)

    out += ["## Pinned posts", ""]
    pinned = [p for p in posts if p.pinned and p.removed is None]
    out += [_post_line(m, p) + folder.reactions.suffix(p.mid) for p in pinned] or [
        "No posts were pinned at the end."]
    out.append("")

    out += ["## Chat", ""]
    out += [_post_line(m, p) + ("" if p.removed else folder.reactions.suffix(p.mid))
            for p in posts] or ["Nobody posted."]
    out.append("")

    out += ["## Moderation", ""]
    out += [f"- {line}" for line in [*m.moderation, *folder.reports.lines(m.clock)]] or [
        "No moderator actions."]
    out.append("")
    return "\n".join(out)


# --- CSV and JSON: the complete record ----------------------------------------------------

_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS: Final = frozenset({"name", "text", "by_name", "of_name"})


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if column in ("ts", "until") and isinstance(value, int):
        return iso(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if column in _TEXT_COLUMNS and text.startswith(_FORMULA_START):
        # Spreadsheets run cells starting like a formula: keep them text.
        return "'" + text
    return text


def unattributed(events: Iterable[Event]) -> list[Event]:
    """The events with each ballot's ``uid`` replaced by ``voter``, a number within its
    poll: a ballot that replaces an earlier one can be told apart (so the counts can be
    recomputed), but no transcript says who chose what."""
    voters: dict[tuple[object, object], int] = {}
    per_poll: dict[object, int] = {}
    out: list[Event] = []
    for ev in events:
        if ev.get("t") == "ballot":
            pid = ev.get("pid")
            key = (pid, ev.get("uid"))
            if key not in voters:
                voters[key] = per_poll[pid] = per_poll.get(pid, 0) + 1
            ev = {**{k: v for k, v in ev.items() if k != "uid"}, "voter": voters[key]}
        out.append(ev)
    return out


def to_csv(log: RoomLog) -> str:
    """Every event of the log, one row each, ``seq`` first; the rest of an event's keys
    go to ``extra`` as JSON. Times are ISO 8601 UTC. Text cells that a spreadsheet
    would take for a formula (starting ``=``, ``+``, ``-``, ``@``) get a leading ``'``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    known = set(CSV_COLUMNS) | {"t"}
    for ev in extras.public_events(unattributed(log.events)):
        row = {"type": ev.get("t"), **{k: v for k, v in ev.items() if k in known and k != "t"}}
        extra = {k: ev[k] for k in sorted(ev) if k not in known}
        row["extra"] = json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None
        writer.writerow([_cell(c, row.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue()


def to_json_obj(log: RoomLog) -> dict[str, Any]:
    """The header (room, title, epoch...) and every event as logged."""
    session = log.session
    events = extras.public_events(unattributed(log.events))
    return {
        "version": JSON_VERSION,
        "room": log.room,
        "title": log.title,
        "conference": log.conference or None,
        "starts": session.starts.isoformat() if session and session.starts else None,
        "ends": session.ends.isoformat() if session and session.ends else None,
        "speakers": list(session.speakers) if session else [],
        "epoch": log.epoch,
        "complete": log.complete,
        "first_seq": events[0].get("seq") if events else None,
        "last_seq": events[-1].get("seq") if events else None,
        "count": len(events),
        "events": events,
    }


def to_json(log: RoomLog) -> str:
    return json.dumps(to_json_obj(log), ensure_ascii=False, indent=1) + "\n"
