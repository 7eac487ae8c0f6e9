"""Tests for livehub.programme: the bundled sample and every validation problem."""

from __future__ import annotations

import textwrap
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from livehub.programme import (
    Programme,
    ProgrammeError,
    Session,
    bundled_path,
    load_programme,
    parse_programme,
)

SOURCE = "prog.toml"

CONFERENCE = '[conference]\ntitle = "Test Conference"\n'


def session_toml(**fields: str | None) -> str:
    """One [[session]] table: values are TOML literals, None leaves a key out."""
    values: dict[str, str | None] = {"slug": '"day1-keynote"', "title": '"Keynote"'}
    values.update(fields)
    body = "".join(f"{key} = {value}\n" for key, value in values.items() if value is not None)
    return "\n[[session]]\n" + body


def problems_of(text: str, source: str = SOURCE) -> list[str]:
    with pytest.raises(ProgrammeError) as info:
        parse_programme(text, source)
    problems = info.value.problems
    assert problems, "a ProgrammeError must name at least one problem"
    assert str(info.value) == "\n".join(problems)
    assert all("\n" not in problem for problem in problems)
    return problems


def only_problem(text: str) -> str:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def assert_names(problem: str, session: str, field: str, source: str = SOURCE) -> None:
    assert problem.startswith(f"{source}: "), problem
    assert session in problem, problem
    assert f'field "{field}"' in problem, problem


# --------------------------------------------------------------------------
# The bundled sample


@pytest.fixture(scope="module")
def sample() -> Programme:
    return load_programme()


def test_bundled_path_exists() -> None:
    path = bundled_path()
    assert path.is_file()
    assert path.name.endswith(".toml")


def test_sample_loads(sample: Programme) -> None:
    assert sample.title == "Councillors Connected"
    assert sample.source == "<bundled sample>"
    assert 10 <= len(sample.sessions) <= 12


def test_sample_has_three_days(sample: Programme) -> None:
    days = [day for day, _ in sample.days()]
    assert days == [date(2009, 4, 6), date(2009, 4, 7), date(2009, 4, 8)]
    for day, sessions in sample.days():
        assert sessions, day
        for session in sessions:
            assert session.starts is not None and session.ends is not None
            assert session.starts.tzinfo is UTC
            assert session.starts < session.ends


@pytest.mark.parametrize(
    "words",
    [
        ("keynote",),
        ("engaging residents",),
        ("blogging",),
        ("getting started", "safely"),
        ("facebook", "went wrong"),
        ("q&a", "tweet"),
    ],
)
def test_sample_has_required_topics(sample: Programme, words: tuple[str, ...]) -> None:
    titles = [s.title.lower() for s in sample.sessions]
    assert any(all(word in title for word in words) for title in titles), (words, titles)


def test_sample_opens_on_day1_and_closes_on_day3(sample: Programme) -> None:
    days = sample.days()
    first_day, first_sessions = days[0]
    last_day, last_sessions = days[-1]
    assert "keynote" in first_sessions[0].title.lower()
    assert last_day == date(2009, 4, 8)
    assert "closing" in last_sessions[-1].title.lower()
    assert first_day == date(2009, 4, 6)


def test_sample_room_settings(sample: Programme) -> None:
    assert any(s.premoderate for s in sample.sessions)
    assert any(s.slow_mode == 10 for s in sample.sessions)
    assert any(not s.guests for s in sample.sessions)
    assert all(s.speakers for s in sample.sessions)
    assert all(s.description for s in sample.sessions)


def test_sample_protocol_example_room(sample: Programme) -> None:
    opening = sample.get("day1-opening")
    assert opening is not None
    assert opening.starts == datetime(2009, 4, 6, 10, 0, tzinfo=UTC)
    assert opening.day == date(2009, 4, 6)
    assert sample.get("no-such-room") is None


def test_sample_slugs_are_unique(sample: Programme) -> None:
    slugs = [s.slug for s in sample.sessions]
    assert len(slugs) == len(set(slugs))
    assert all(sample.get(slug) is s for slug, s in zip(slugs, sample.sessions, strict=True))


def test_load_by_path_equals_bundled(sample: Programme) -> None:
    loaded = load_programme(bundled_path())
    assert loaded.sessions == sample.sessions
    assert loaded.source == str(bundled_path())


# --------------------------------------------------------------------------
# A valid file, parsed


def test_full_session_parsed() -> None:
    text = CONFERENCE + session_toml(
        starts="2009-04-06T11:00:00+01:00",
        ends="2009-04-06T11:00:00Z",
        speakers='["Cllr Jane Doe (Anytown Borough Council)", "Cllr John Roe"]',
        guests="false",
        premoderate="true",
        slow_mode="10",
        description='"About things."',
    )
    programme = parse_programme(text, SOURCE)
    assert programme.title == "Test Conference"
    assert programme.source == SOURCE
    (session,) = programme.sessions
    assert session == Session(
        slug="day1-keynote",
        title="Keynote",
        starts=datetime(2009, 4, 6, 10, 0, tzinfo=UTC),
        ends=datetime(2009, 4, 6, 11, 0, tzinfo=UTC),
        speakers=("Cllr Jane Doe (Anytown Borough Council)", "Cllr John Roe"),
        guests=False,
        premoderate=True,
        slow_mode=10,
        description="About things.",
    )
    assert session.starts is not None and session.starts.utcoffset() is not None
    assert session.starts.tzinfo is UTC


def test_defaults() -> None:
    programme = parse_programme(CONFERENCE + session_toml(), SOURCE)
    session = programme.sessions[0]
    assert session.starts is None and session.ends is None and session.day is None
    assert session.speakers == ()
    assert session.guests is True
    assert session.premoderate is False
    assert session.slow_mode == 0
    assert session.description == ""


def test_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (CONFERENCE + session_toml()).encode())
    assert load_programme(path).sessions[0].slug == "day1-keynote"


# --------------------------------------------------------------------------
# days()


def test_days_groups_and_orders() -> None:
    text = (
        CONFERENCE
        + session_toml(slug='"b"', starts="2009-04-07T09:00:00Z")
        + session_toml(slug='"undated"')
        + session_toml(slug='"a2"', starts="2009-04-06T14:00:00Z")
        + session_toml(slug='"a1"', starts="2009-04-06T09:00:00Z")
        + session_toml(slug='"a3"', starts="2009-04-06T14:00:00Z")
        + session_toml(slug='"c"', starts="2009-04-08T23:30:00-01:00")  # 00:30Z on the 9th
    )
    programme = parse_programme(text, SOURCE)
    grouped = [(day, [s.slug for s in sessions]) for day, sessions in programme.days()]
    assert grouped == [
        (date(2009, 4, 6), ["a1", "a2", "a3"]),
        (date(2009, 4, 7), ["b"]),
        (date(2009, 4, 9), ["c"]),
        (None, ["undated"]),
    ]
    # Round trip: every session appears exactly once, and get() finds each.
    flattened = [s for _, sessions in programme.days() for s in sessions]
    assert sorted(s.slug for s in flattened) == sorted(s.slug for s in programme.sessions)
    for day, sessions in programme.days():
        for session in sessions:
            assert session.day == day
            assert programme.get(session.slug) is session


def test_sessions_keep_file_order() -> None:
    text = (
        CONFERENCE
        + session_toml(slug='"late"', starts="2009-04-06T15:00:00Z")
        + session_toml(slug='"early"', starts="2009-04-06T09:00:00Z")
    )
    programme = parse_programme(text, SOURCE)
    assert [s.slug for s in programme.sessions] == ["late", "early"]


# --------------------------------------------------------------------------
# File-level problems


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ProgrammeError) as info:
        load_programme(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: ")
    assert "cannot read" in problem


def test_unreadable_file_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ProgrammeError) as info:
        load_programme(tmp_path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{tmp_path}: ")
    assert "cannot read" in problem


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[conference]\ntitle = "Caf\xe9"\n')
    with pytest.raises(ProgrammeError) as info:
        load_programme(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: line 2")
    assert "UTF-8" in problem


def test_toml_syntax_error_has_line_and_column() -> None:
    text = CONFERENCE + "\n[[session]]\nslug = day1\n"
    problem = only_problem(text)
    assert problem.startswith(f"{SOURCE}: line 5, column 8: invalid TOML")


def test_toml_syntax_error_at_end_of_file() -> None:
    problem = only_problem(CONFERENCE + 'x = """never closed')
    assert problem.startswith(f"{SOURCE}: ")
    assert "invalid TOML" in problem
    assert "end of file" in problem


def test_toml_syntax_error_via_load(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[conference\n", encoding="utf-8")
    with pytest.raises(ProgrammeError) as info:
        load_programme(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: line 1, column ")


def test_missing_conference() -> None:
    problem = only_problem(session_toml())
    assert problem.startswith(f"{SOURCE}: [conference]: missing")


def test_conference_not_a_table() -> None:
    problem = only_problem('conference = "Test"\n' + session_toml())
    assert problem.startswith(f"{SOURCE}: [conference]: must be a table")


def test_missing_conference_title() -> None:
    problem = only_problem("[conference]\n" + session_toml())
    assert_names(problem, "[conference]", "title")
    assert "missing" in problem


def test_empty_conference_title() -> None:
    problem = only_problem('[conference]\ntitle = "  "\n' + session_toml())
    assert_names(problem, "[conference]", "title")


def test_unknown_conference_key() -> None:
    problem = only_problem(CONFERENCE + 'titel = "x"\n' + session_toml())
    assert_names(problem, "[conference]", "titel")
    assert "unknown" in problem


def test_no_sessions() -> None:
    problem = only_problem(CONFERENCE)
    assert problem.startswith(f"{SOURCE}: no sessions")


def test_session_written_as_single_table() -> None:
    problem = only_problem(CONFERENCE + '[session]\nslug = "a"\ntitle = "A"\n')
    assert problem.startswith(f"{SOURCE}: ")
    assert "[[session]]" in problem


def test_session_entry_not_a_table() -> None:
    problem = only_problem('session = ["a"]\n' + CONFERENCE)
    assert problem.startswith(f"{SOURCE}: session #1: must be a [[session]] table")


def test_unknown_top_level_key_suggests_fix() -> None:
    text = CONFERENCE + session_toml() + '\n[[sessions]]\nslug = "b"\ntitle = "B"\n'
    problem = only_problem(text)
    assert '"sessions"' in problem
    assert 'did you mean "session"' in problem


# --------------------------------------------------------------------------
# Session problems, one per test


def test_missing_slug_named_by_position() -> None:
    text = CONFERENCE + session_toml() + session_toml(slug=None, title='"Second"')
    problem = only_problem(text)
    assert_names(problem, "session #2", "slug")
    assert "missing" in problem


@pytest.mark.parametrize(
    "slug",
    ['"Day1"', '"day 1"', '"-day1"', '"day_1"', '""', '"' + "a" * 65 + '"', "1", '"déjà"'],
)
def test_bad_slug_named_by_position(slug: str) -> None:
    text = CONFERENCE + session_toml(slug=slug)
    problem = only_problem(text)
    assert_names(problem, "session #1", "slug")
    assert "[a-z0-9][a-z0-9-]{0,63}" in problem


def test_longest_slug_is_fine() -> None:
    slug = "a" * 64
    programme = parse_programme(CONFERENCE + session_toml(slug=f'"{slug}"'), SOURCE)
    assert programme.get(slug) is not None


def test_duplicate_slug_names_both_positions() -> None:
    text = (
        CONFERENCE
        + session_toml(slug='"day1-keynote"')
        + session_toml(slug='"other"')
        + session_toml(slug='"day1-keynote"', title='"Again"')
    )
    problem = only_problem(text)
    assert_names(problem, "session #3", "slug")
    assert "session #1" in problem
    assert "duplicate" in problem
    assert '"day1-keynote"' in problem


def test_missing_title() -> None:
    problem = only_problem(CONFERENCE + session_toml(title=None))
    assert_names(problem, 'session "day1-keynote"', "title")
    assert "missing" in problem


@pytest.mark.parametrize("title", ['""', '"   "', "5", "true"])
def test_bad_title(title: str) -> None:
    problem = only_problem(CONFERENCE + session_toml(title=title))
    assert_names(problem, 'session "day1-keynote"', "title")


@pytest.mark.parametrize("field", ["starts", "ends"])
@pytest.mark.parametrize(
    "value",
    [
        '"2009-04-06T10:00:00Z"',  # a string, not a TOML date-time
        "2009-04-06",  # a date without a time
        "10:00:00",  # a time without a date
        "1239012000",  # a number
    ],
)
def test_times_must_be_datetimes(field: str, value: str) -> None:
    problem = only_problem(CONFERENCE + session_toml(**{field: value}))
    assert_names(problem, 'session "day1-keynote"', field)
    assert "date-time" in problem


def test_quoted_datetime_hint() -> None:
    problem = only_problem(CONFERENCE + session_toml(starts='"2009-04-06T10:00:00Z"'))
    assert "without quotes" in problem


@pytest.mark.parametrize("field", ["starts", "ends"])
def test_naive_datetime_rejected(field: str) -> None:
    problem = only_problem(CONFERENCE + session_toml(**{field: "2009-04-06T10:00:00"}))
    assert_names(problem, 'session "day1-keynote"', field)
    assert "offset" in problem
    assert "(got 2009-04-06T10:00:00)" in problem


@pytest.mark.parametrize(
    ("starts", "ends"),
    [
        ("2009-04-06T11:00:00Z", "2009-04-06T10:00:00Z"),
        ("2009-04-06T10:00:00Z", "2009-04-06T10:00:00Z"),
        # Same wall-clock order, but 10:30+01:00 is 09:30Z: before the start.
        ("2009-04-06T10:00:00Z", "2009-04-06T10:30:00+01:00"),
    ],
)
def test_ends_before_starts(starts: str, ends: str) -> None:
    problem = only_problem(CONFERENCE + session_toml(starts=starts, ends=ends))
    assert_names(problem, 'session "day1-keynote"', "ends")
    assert "later than starts" in problem


def test_ends_without_starts_is_fine() -> None:
    programme = parse_programme(CONFERENCE + session_toml(ends="2009-04-06T10:00:00Z"), SOURCE)
    assert programme.sessions[0].ends == datetime(2009, 4, 6, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ('"Cllr Jane Doe"', None),
        ('["Cllr Jane Doe", 3]', "item 2"),
        ('["Cllr Jane Doe", ["nested"]]', "item 2"),
        ('[" "]', "item 1"),
        ("true", None),
    ],
)
def test_speakers_must_be_list_of_strings(value: str, detail: str | None) -> None:
    problem = only_problem(CONFERENCE + session_toml(speakers=value))
    assert_names(problem, 'session "day1-keynote"', "speakers")
    if detail is not None:
        assert detail in problem


@pytest.mark.parametrize("field", ["guests", "premoderate"])
@pytest.mark.parametrize("value", ['"yes"', '"true"', "1", "0", "[true]"])
def test_flags_must_be_booleans(field: str, value: str) -> None:
    problem = only_problem(CONFERENCE + session_toml(**{field: value}))
    assert_names(problem, 'session "day1-keynote"', field)
    assert "true or false" in problem


@pytest.mark.parametrize("value", ["-5", "true", "false", "10.0", '"10"', "[10]"])
def test_slow_mode_must_be_non_negative_int(value: str) -> None:
    problem = only_problem(CONFERENCE + session_toml(slow_mode=value))
    assert_names(problem, 'session "day1-keynote"', "slow_mode")
    assert "integer >= 0" in problem


def test_slow_mode_message_matches_documented_format() -> None:
    problem = only_problem(CONFERENCE + session_toml(slow_mode="-5"))
    assert problem == (
        'prog.toml: session "day1-keynote": field "slow_mode": must be an integer >= 0 (got -5)'
    )


def test_slow_mode_zero_is_fine() -> None:
    programme = parse_programme(CONFERENCE + session_toml(slow_mode="0"), SOURCE)
    assert programme.sessions[0].slow_mode == 0


def test_description_must_be_string() -> None:
    problem = only_problem(CONFERENCE + session_toml(description="42"))
    assert_names(problem, 'session "day1-keynote"', "description")


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [("slowmode", "slow_mode"), ("premoderated", "premoderate"), ("speaker", "speakers")],
)
def test_unknown_session_key_is_named(key: str, suggestion: str) -> None:
    problem = only_problem(CONFERENCE + session_toml(**{key: "1"}))
    assert_names(problem, 'session "day1-keynote"', key)
    assert "unknown" in problem
    assert f'did you mean "{suggestion}"' in problem


def test_unknown_key_without_suggestion() -> None:
    problem = only_problem(CONFERENCE + session_toml(colour='"red"'))
    assert_names(problem, 'session "day1-keynote"', "colour")
    assert "did you mean" not in problem


# --------------------------------------------------------------------------
# Several problems at once


def test_all_problems_reported(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        [conference]
        title = ""

        [[session]]
        slug = "day1-keynote"
        title = "Keynote"
        starts = 2009-04-06T10:00:00
        slow_mode = -5
        guests = "yes"
        slowmode = 3

        [[session]]
        slug = "Bad Slug"
        premoderate = 1

        [[session]]
        slug = "day1-keynote"
        title = "Again"
        starts = 2009-04-06T12:00:00Z
        ends = 2009-04-06T11:00:00Z
        speakers = "Cllr Jane Doe"
        """
    )
    path = tmp_path / "many.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProgrammeError) as info:
        load_programme(path)
    problems = info.value.problems
    source = str(path)
    assert all(p.startswith(f"{source}: ") for p in problems), problems

    def one(session: str, field: str) -> str:
        matches = [p for p in problems if session in p and f'field "{field}"' in p]
        assert len(matches) == 1, (session, field, problems)
        return matches[0]

    one("[conference]", "title")
    # The first day1-keynote is a duplicate pair: named by position.
    assert "offset" in one("session #1", "starts")
    assert "(got -5)" in one("session #1", "slow_mode")
    one("session #1", "guests")
    one("session #1", "slowmode")
    one("session #2", "slug")
    one("session #2", "title")
    one("session #2", "premoderate")
    assert "session #1" in one("session #3", "slug")
    one("session #3", "ends")
    one("session #3", "speakers")
    assert len(problems) == 11, problems
    assert str(info.value).count("\n") == 10


def test_problems_in_file_order() -> None:
    text = (
        CONFERENCE
        + session_toml(slug='"one"', slow_mode="-1")
        + session_toml(slug='"two"', guests='"no"')
    )
    problems = problems_of(text)
    assert len(problems) == 2
    assert 'session "one"' in problems[0]
    assert 'session "two"' in problems[1]


def test_error_is_an_exception_with_problems() -> None:
    error = ProgrammeError(["a: one", "a: two"])
    assert isinstance(error, Exception)
    assert error.problems == ["a: one", "a: two"]
    assert str(error) == "a: one\na: two"
