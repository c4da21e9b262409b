"""report.html: one self-contained page (plotly.js inlined once, no CDN), readable offline."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

STYLE = """
body {font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #111827;}
h1 {margin-bottom: 0.2em;} h2 {border-top: 2px solid #e5e7eb; padding-top: 1em; margin-top: 2em;}
table {border-collapse: collapse; margin: 0.8em 0; font-size: 14px;}
th, td {border: 1px solid #d1d5db; padding: 3px 8px; text-align: left; vertical-align: top;}
th {background: #f3f4f6;}
code {background: #f3f4f6; border-radius: 3px; padding: 0 3px; font-size: 13px;}
pre {background: #f3f4f6; padding: 0.6em; overflow-x: auto;}
.meta {color: #4b5563; font-size: 14px;} .error {color: #b91c1c; font-weight: 600;}
.description {background: #f9fafb; border-left: 4px solid #c7d2fe; padding: 0.2em 1em; margin: 1em 0;}
figure {margin: 1.5em 0;} figcaption {font-weight: 600; margin-bottom: 0.3em;}
"""


@dataclass
class LabSection:
    lab: str
    title: str
    description: str  # markdown
    summary: str  # markdown
    figures: list[tuple[str, go.Figure]] = field(default_factory=list)
    error: str | None = None
    seconds: float | None = None


def markdown_html(text: str) -> str:
    """Markdown -> HTML with tables; raw HTML in the text is escaped (token pieces such as `<bos>`)."""
    try:
        from markdown_it import MarkdownIt  # installed with gradio (through rich)
    except ImportError:  # pragma: no cover - a plain fallback keeps the report readable
        return f"<pre>{html.escape(text)}</pre>"
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def render(meta: dict[str, Any], sections: list[LabSection]) -> str:
    """The whole page. `meta`: model, seed, quick, versions (shown in the header)."""
    model = meta.get("model") or {}
    versions = ", ".join(f"{k} {v}" for k, v in sorted((meta.get("versions") or {}).items()))
    seed = meta.get("seed")
    header = (
        f"<p class='meta'>Model <code>{html.escape(str(model.get('id', model)))}</code>"
        f" ({html.escape(str(model.get('dtype', '')))} on {html.escape(str(model.get('device', '')))})"
        f" · seed {html.escape('each preset' if seed is None else str(seed))}"
        f" · {'quick settings' if meta.get('quick') else 'full presets'} · {html.escape(versions)}</p>"
    )
    toc = "".join(f"<li><a href='#lab-{s.lab}'>{html.escape(s.title)}</a></li>" for s in sections)
    body = "\n".join(_section(s) for s in sections)
    title = f"Gemma Inspector labs report: {model.get('id', model)}"
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{html.escape(str(title))}</title>\n<style>{STYLE}</style>\n"
        f"<script type='text/javascript'>{get_plotlyjs()}</script>\n</head>\n<body>\n"
        f"<h1>Gemma Inspector: the course's labs</h1>\n{header}\n<ol>{toc}</ol>\n{body}\n</body>\n</html>\n"
    )


def _section(section: LabSection) -> str:
    parts = [
        f"<section id='lab-{section.lab}'>",
        f"<h2>{html.escape(section.title)}</h2>",
        f"<div class='description'>{markdown_html(section.description)}</div>",
    ]
    if section.error is not None:
        parts.append(f"<p class='error'>This lab failed: {html.escape(section.error)}</p>")
    if section.summary:
        parts.append(f"<div class='summary'>{markdown_html(section.summary)}</div>")
    for i, (caption, fig) in enumerate(section.figures):
        plot = fig.to_html(
            full_html=False, include_plotlyjs=False, div_id=f"{section.lab}-figure-{i}", config={"displaylogo": False}
        )
        same = caption == (fig.layout.title.text or "")  # no caption that repeats the figure's own title
        label = "" if same else f"<figcaption>{html.escape(caption)}</figcaption>"
        parts.append(f"<figure>{label}{plot}</figure>")
    if section.seconds is not None:
        parts.append(f"<p class='meta'>Ran in {section.seconds:.1f} s.</p>")
    parts.append("</section>")
    return "\n".join(parts)
