"""Watched words: does a text hit the room's block or hold list?

Pure: compiled once from the programme's lists, then asked about each text.
Text and entries are normalised the same way (:func:`normalise`), split into
words (runs of letters, digits and ``_``), and an entry matches where its words
stand as consecutive whole words of the text, whatever lies between them; an
entry ending in ``*`` matches any word that starts with its last word.

The cost of a check does not grow with the lists' length: the entries form a
trie keyed by whole words, so each word of the text costs one dict lookup per
trie level it reaches (plus, where prefix entries exist, one lookup per prefix
length of the word, bounded by the longest entry). No alternation regex, no
entry-by-entry scan.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import regex

MAX_ENTRY: Final = 80

# Format characters (zero-width space, joiners, word joiner, BOM, soft hyphen, bidi
# controls...) are invisible: removed so that "klonk<ZWJ>wit" is "klonkwit". The
# contract names U+200B-U+200D, U+2060 and U+FEFF; all of category Cf are removed.
_INVISIBLE: Final = regex.compile(r"\p{Cf}+")
# Non-spacing and enclosing marks are removed after decomposition, so a mark laid over
# a letter (strike-through, accents stacked to dodge a list) does not split or change
# a word. Accented letters therefore match their plain letter ("café" ~ "cafe").
_MARKS: Final = regex.compile(r"[\p{Mn}\p{Me}]+")
# A word: letters, digits and "_" (spacing marks kept inside words, for Indic scripts).
_WORD: Final = regex.compile(r"[\w\p{Mc}]+")
_HAS_ALNUM: Final = regex.compile(r"[\p{L}\p{N}]")


class Verdict(enum.IntEnum):
    """What a text earns; a higher value wins."""

    PASS = 0
    HOLD = 1
    BLOCK = 2


def normalise(text: str) -> str:
    """Invisible characters removed, NFKC, casefolded, marks removed."""
    text = _INVISIBLE.sub("", text)
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _MARKS.sub("", unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFKC", text)


def words(text: str) -> list[str]:
    """The normalised words of ``text``."""
    found: list[str] = _WORD.findall(normalise(text))
    return found


def entry_problem(entry: object) -> str | None:
    """Why ``entry`` cannot be a list entry, or None when it can."""
    if not isinstance(entry, str):
        return "must be a string"
    if not 1 <= len(entry) <= MAX_ENTRY:
        return f"must be 1 to {MAX_ENTRY} characters"
    if "*" in entry[:-1]:
        return '"*" may only be the last character (a prefix)'
    if not _HAS_ALNUM.search(entry) or not words(entry.rstrip("*")):
        return "needs at least one letter or digit"
    return None


@dataclass(slots=True)
class _Node:
    """A trie node: the entries continuing with one more whole word."""

    children: dict[str, _Node] = field(default_factory=dict)
    verdict: Verdict = Verdict.PASS  # an entry ends here
    # entries whose last word is a prefix: prefix -> verdict
    prefixes: dict[str, Verdict] = field(default_factory=dict)
    longest_prefix: int = 0


class Matcher:
    """Block and hold lists, compiled. Immutable once built; share it freely."""

    __slots__ = ("_depth", "_root", "size")

    def __init__(self, block: Iterable[str] = (), hold: Iterable[str] = ()) -> None:
        self._root = _Node()
        self._depth = 0  # words in the longest entry
        self.size = 0
        for verdict, entries in ((Verdict.BLOCK, block), (Verdict.HOLD, hold)):
            for entry in entries:
                self._add(entry, verdict)

    def __bool__(self) -> bool:
        return self.size > 0

    def _add(self, entry: str, verdict: Verdict) -> None:
        prefix = entry.endswith("*")
        ws = words(entry.rstrip("*") if prefix else entry)
        if not ws:
            return  # validation refuses these; a matcher built anyway ignores them
        node = self._root
        for word in ws[:-1]:
            node = node.children.setdefault(word, _Node())
        last = ws[-1]
        if prefix:
            node.prefixes[last] = max(node.prefixes.get(last, Verdict.PASS), verdict)
            node.longest_prefix = max(node.longest_prefix, len(last))
        else:
            child = node.children.setdefault(last, _Node())
            child.verdict = max(child.verdict, verdict)
        self._depth = max(self._depth, len(ws))
        self.size += 1

    def check(self, text: str) -> Verdict:
        """BLOCK, HOLD or PASS for ``text`` (block wins over hold)."""
        if not self.size or not text:
            return Verdict.PASS
        ws = words(text)
        best = Verdict.PASS
        root, depth = self._root, self._depth
        for start in range(len(ws)):
            node = root
            for i in range(start, min(start + depth, len(ws))):
                word = ws[i]
                if node.prefixes:
                    best = max(best, _prefix_verdict(node, word))
                nxt = node.children.get(word)
                if nxt is None:
                    break
                best = max(best, nxt.verdict)
                node = nxt
            if best is Verdict.BLOCK:
                return best
        return best


def _prefix_verdict(node: _Node, word: str) -> Verdict:
    best = Verdict.PASS
    prefixes = node.prefixes
    for n in range(1, min(len(word), node.longest_prefix) + 1):
        found = prefixes.get(word[:n])
        if found is not None and found > best:
            best = found
    return best


EMPTY: Final = Matcher()


@dataclass(frozen=True, slots=True)
class WordLists:
    """The lists as the programme gives them (validated): what a matcher is built from."""

    block: tuple[str, ...] = ()
    hold: tuple[str, ...] = ()

    def __add__(self, other: WordLists) -> WordLists:
        return WordLists(self.block + other.block, self.hold + other.hold)

    def __bool__(self) -> bool:
        return bool(self.block or self.hold)


def parse_lists(raw: object) -> tuple[WordLists, list[tuple[str, str]]]:
    """Validate a ``watched_words`` table: the lists, and (field, problem) pairs."""
    if not isinstance(raw, dict):
        return WordLists(), [("watched_words", 'must be a table: { block = [...], hold = [...] }')]
    problems: list[tuple[str, str]] = []
    for key in raw:
        if key not in ("block", "hold"):
            problems.append((f"watched_words.{key}", 'unknown list: only "block" and "hold"'))
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("block", "hold"):
        value = raw.get(key, [])
        name = f"watched_words.{key}"
        if not isinstance(value, list):
            problems.append((name, "must be a list of strings"))
            continue
        for index, entry in enumerate(value, start=1):
            why = entry_problem(entry)
            if why is not None:
                shown = entry if isinstance(entry, str) else type(entry).__name__
                problems.append((name, f"item {index} {why} (got {shown!r:.60})"))
        lists[key] = tuple(e for e in value if isinstance(e, str))
    return WordLists(lists.get("block", ()), lists.get("hold", ())), problems
