"""The public record of a closed session (``/record/{room}``), as an HTML page body.

It is the Markdown transcript (:func:`livehub.export.to_markdown`) without its
Moderation section, rendered to HTML: so the record says exactly what the
minutes say, and every rule the transcript keeps (removed text left out,
anonymous askers unnamed, user text inert) holds on the page too. User text was
escaped for Markdown by the transcript, and raw HTML is off here, so nothing a
participant typed can become markup.
"""

from __future__ import annotations

from typing import Final

from markdown_it import MarkdownIt

from livehub import export

# The staff-facing part of the minutes: who muted, removed or banned whom.
_STAFF_SECTIONS: Final = ("## Moderation",)
_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def public_markdown(log: export.RoomLog) -> str:
    """The transcript's public sections: title, time, questions, polls, pins, chat."""
    text = export.to_markdown(log)
    kept: list[str] = []
    skipping = False
    for line in text.split("\n"):
        if line.startswith("## "):
            skipping = line.rstrip() in _STAFF_SECTIONS
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


def record_body(log: export.RoomLog) -> str:
    """The record as HTML (headings from ``h1`` down, lists and paragraphs)."""
    html: str = _md.render(public_markdown(log))
    return html
