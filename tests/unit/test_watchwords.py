"""The watched-words matcher: normalisation, whole words, phrases, prefixes, cost."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livehub.watchwords import Matcher, Verdict, entry_problem, normalise, parse_lists

M = Matcher(block=["klonkwit", "grimbo*", "parsnip gate"], hold=["gumphery", "vile lies"])

# Lower-case ASCII words that are not themselves entries, to build texts from.
word = st.text(alphabet="abcdefhjmnqrsuvxyz", min_size=1, max_size=8)
entry_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=10)
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]


@pytest.mark.parametrize(("text", "verdict"), [
    ("KLONKWIT", Verdict.BLOCK),
    ("\uff4b\uff4c\uff4f\uff4e\uff4b\uff57\uff49\uff54", Verdict.BLOCK),  # full-width
    ("klonk\u200dwit", Verdict.BLOCK),
    ("you klonkwit!", Verdict.BLOCK),
    ("klonkwits", Verdict.PASS),
    ("Scunklonkwitthorpe", Verdict.PASS),
    ("grimbo", Verdict.BLOCK),
    ("GRIMBOLT and more", Verdict.BLOCK),
    ("agrimbo", Verdict.PASS),
    ("parsnip-gate", Verdict.BLOCK),
    ("parsnip, ... gate", Verdict.BLOCK),
    ("parsnipgate", Verdict.PASS),
    ("parsnip gates", Verdict.PASS),
    ("the gumphery", Verdict.HOLD),
    ("Vile   lies!", Verdict.HOLD),
    ("vile gumphery klonkwit", Verdict.BLOCK),  # block wins over hold
    ("lies vile", Verdict.PASS),
    ("", Verdict.PASS),
    ("nothing to see", Verdict.PASS),
])
def test_examples(text: str, verdict: Verdict) -> None:
    assert M.check(text) is verdict


def test_combining_marks_and_other_invisibles_do_not_evade() -> None:
    assert M.check("k\u0336l\u0336o\u0336n\u0336k\u0336w\u0336i\u0336t\u0336") is Verdict.BLOCK
    assert M.check("klo\u0301nkwit") is Verdict.BLOCK
    assert M.check("klonk\u00adwit") is Verdict.BLOCK  # soft hyphen


@given(st.lists(word, max_size=6), st.lists(word, max_size=6), entry_word,
       st.sampled_from(["upper", "title", "fullwidth", "zerowidth", "marks"]),
       st.data())
@settings(max_examples=300, deadline=None)
def test_evasion_still_matches(before: list[str], after: list[str], entry: str, how: str,
                               data: st.DataObject) -> None:
    m = Matcher(block=[entry])
    disguised = entry
    if how == "upper":
        disguised = entry.upper()
    elif how == "title":
        disguised = entry.title()
    elif how == "fullwidth":
        disguised = "".join(chr(ord(c) - 0x61 + 0xFF41) for c in entry)
    elif how == "zerowidth":
        at = data.draw(st.integers(1, len(entry) - 1))
        disguised = entry[:at] + data.draw(st.sampled_from(ZERO_WIDTH)) + entry[at:]
    else:
        disguised = "".join(c + "\u0301" for c in entry)
    text = " ".join([*before, disguised, *after])
    assert m.check(text) is Verdict.BLOCK


@given(entry_word, word, word, st.booleans())
@settings(max_examples=300, deadline=None)
def test_no_match_inside_longer_words(entry: str, head: str, tail: str, both: bool) -> None:
    m = Matcher(block=[entry], hold=[entry + " " + entry])
    text = f"{head}{entry}{tail}" if both else f"{entry}{tail}"
    assert m.check(f"x {text} y") is Verdict.PASS


@given(st.lists(st.sampled_from(["vile", "lies", "vile lies", "the", "!", ",", " "]),
                max_size=12))
@settings(max_examples=200, deadline=None)
def test_phrase_matches_exactly_when_its_words_are_consecutive(parts: list[str]) -> None:
    text = " ".join(parts)
    ws = [w for w in normalise(text).replace(",", " ").replace("!", " ").split()]
    expected = any(ws[i:i + 2] == ["vile", "lies"] for i in range(len(ws)))
    assert (Matcher(hold=["vile lies"]).check(text) is Verdict.HOLD) is expected


def test_entry_rules() -> None:
    assert entry_problem("klonkwit") is None
    assert entry_problem("grimbo*") is None
    assert entry_problem("") is not None
    assert entry_problem("x" * 81) is not None
    assert entry_problem("a*b") is not None
    assert entry_problem("!!!") is not None
    assert entry_problem(3) is not None
    lists, problems = parse_lists({"block": ["ok"], "hold": "nope", "flag": []})
    assert lists.block == ("ok",)
    assert [f for f, _ in problems] == ["watched_words.flag", "watched_words.hold"]


def test_cost_does_not_grow_with_the_lists() -> None:
    small = Matcher(block=[f"w{i}x" for i in range(10)])
    big = Matcher(block=[f"w{i}x" for i in range(10_000)],
                  hold=[f"p{i} q{i}" for i in range(5_000)] + [f"z{i}*" for i in range(5_000)])
    text = " ".join(f"word{i} w{i}" for i in range(300))

    def best(m: Matcher) -> float:
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            m.check(text)
            times.append(time.perf_counter() - t0)
        return min(times)

    assert best(big) < best(small) * 3 + 0.0005
