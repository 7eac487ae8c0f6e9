"""Speakers with affiliations in the programme file (issue 16)."""

from __future__ import annotations

import pytest

from livehub.programme import ProgrammeError, load_programme, parse_programme

HEAD = '[conference]\ntitle = "T"\n\n[[session]]\nslug = "a"\ntitle = "A"\n'


def test_plain_names_and_tables_with_affiliations_mix() -> None:
    programme = parse_programme(
        HEAD + 'speakers = ["Cllr A", {name = "Cllr B", affiliation = "Eastmere DC"}]\n', "t")
    session = programme.sessions[0]
    assert session.speakers == ("Cllr A", "Cllr B")
    assert session.affiliations == ("", "Eastmere DC")
    assert session.affiliation(0) == "" and session.affiliation(1) == "Eastmere DC"


def test_plain_names_alone_carry_no_affiliations() -> None:
    session = parse_programme(HEAD + 'speakers = ["Cllr A"]\n', "t").sessions[0]
    assert session.affiliations == () and session.affiliation(0) == ""


@pytest.mark.parametrize("entry", [
    '{name = "B"}', '{affiliation = "X"}', '{name = "B", affiliation = ""}',
    '{name = "B", affiliation = "two\\nlines"}', f'{{name = "B", affiliation = "{"x" * 81}"}}',
    '{name = "B", affiliation = "X", title = "Dr"}', '{name = "", affiliation = "X"}',
])
def test_bad_speaker_tables_are_named(entry: str) -> None:
    with pytest.raises(ProgrammeError) as info:
        parse_programme(HEAD + f"speakers = [{entry}]\n", "t")
    problem = str(info.value)
    assert 'session "a"' in problem and '"speakers"' in problem and "item 1" in problem


def test_the_sample_shows_affiliations() -> None:
    sample = load_programme()
    assert any(s.affiliations for s in sample.sessions)
