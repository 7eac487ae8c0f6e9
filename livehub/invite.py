"""``livehub invite``: personal sign-in links for a list of people, CSV in, CSV out.

The input's header names ``name``, ``role``, ``room`` and, optionally,
``affiliation`` in any order; other columns are copied through and a ``link``
column is added. Every bad row is reported (line of the file where the row
starts, the header being line 1, and the column); with any, nothing is written.
"""

from __future__ import annotations

import codecs
import csv
import io
import secrets
from dataclasses import dataclass

from livehub import auth
from livehub.programme import Programme
from livehub.roles import Role, parse_role
from livehub.signin_rules import one_line_problem

REQUIRED = ("name", "role", "room")
OPTIONAL = ("affiliation",)
LINK = "link"
NAME_MAX = 80
DEFAULT_BASE = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class Invitations:
    """The CSV to write (bytes, BOM kept), or the problems that stop it."""

    output: bytes
    problems: list[str]


def _cell(row: list[str], index: int | None) -> str:
    return row[index] if index is not None and index < len(row) else ""


def invite(data: bytes, *, source: str, programme: Programme, secret: str, base: str,
           ttl: int, now: float | None = None) -> Invitations:
    """Links for every row of ``data``, or every problem found."""
    bom = data.startswith(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return Invitations(b"", [f"{source}: line {line}: not valid UTF-8 text (save the "
                                 "file as CSV UTF-8)"])
    newline = "\r\n" if "\r\n" in text.split("\n", 1)[0] + "\n" else "\n"
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[str] = []
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return Invitations(b"", [f"{source}: line 1: no header: the first line must name "
                                 "the columns name, role, room (and optionally affiliation)"])
    columns = {name.strip().lower(): i for i, name in reversed(list(enumerate(header)))}
    for name in REQUIRED:
        if name not in columns:
            problems.append(f'{source}: line 1: column "{name}": missing from the header')
    if LINK in columns:
        problems.append(f'{source}: line 1: column "{LINK}": already there; this command '
                        "adds it: remove or rename that column")
    if problems:
        return Invitations(b"", problems)

    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow([*header, LINK])
    line = 2  # where the next row starts
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue  # blank lines, often at the end of a spreadsheet's export
            found = _check_row(row, columns, len(header), programme)
            problems.extend(f'{source}: line {start}: column "{col}": {why}'
                            for col, why in found)
            if found:
                continue
            name, room = row[columns["name"]], row[columns["room"]].strip()
            role = parse_role(row[columns["role"]].strip().lower())
            assert role is not None
            affiliation = _cell(row, columns.get("affiliation"))
            token = auth.mint(secret, name=name, role=role, sub=f"inv-{secrets.token_hex(8)}",
                              rooms=[room], ttl=ttl, now=now, affiliation=affiliation or None)
            padded = row + [""] * (len(header) - len(row))
            writer.writerow([*padded, f"{base}/room/{room}#token={token}"])
    except csv.Error as exc:
        problems.append(f"{source}: line {line}: not valid CSV: {exc}")
    if problems:
        return Invitations(b"", problems)
    return Invitations((codecs.BOM_UTF8 if bom else b"") + out.getvalue().encode(), [])


def _check_row(row: list[str], columns: dict[str, int], width: int,
               programme: Programme) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if len(row) > width:
        found.append((f"#{width + 1}", f"the row has {len(row)} cells but the header names {width} "
                            "columns"))
    name = _cell(row, columns["name"])
    if not name.strip():
        found.append(("name", "must not be empty"))
    elif len(name) > NAME_MAX:
        found.append(("name", f"must be at most {NAME_MAX} characters (got {len(name)})"))
    elif one_line_problem(name, NAME_MAX):
        found.append(("name", "must be one line (no line breaks, control or bidirectional "
                              "characters)"))
    role = _cell(row, columns["role"])
    if parse_role(role.strip().lower()) is None:
        choices = ", ".join(str(r) for r in Role)
        found.append(("role", f"must be one of {choices} (got {role!r})"))
    room = _cell(row, columns["room"]).strip()
    if programme.get(room) is None:
        found.append(("room", f"no session {room!r} in the programme {programme.source}"))
    if "affiliation" in columns:
        affiliation = _cell(row, columns["affiliation"])
        why = one_line_problem(affiliation) if affiliation else None
        if why:
            found.append(("affiliation", why))
    return found
