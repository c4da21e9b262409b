"""A saved conversation (or turn) as one standalone page, readable offline: plotly.js inlined once, no CDN.

For each turn: the chat, the exact templated prompt, every token with its id, the next-token candidates of
each reply step (a table of all steps and the bars of the step the model was least sure of), the SAE
feature kept in the record, and how the turn was steered or branched. Built from the records alone:
no model, no torch. The page is for reading; the .json file is the one the app opens again.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from plotly.offline import get_plotlyjs

from inspectors.engine.record import TurnRecord
from inspectors.report_html import STYLE, markdown_html
from inspectors.sae.sparse import SparseActivations
from inspectors.views.next_token import next_token_figure
from inspectors.views.prompt import prompt_html, prompt_warnings
from inspectors.views.sae_view import feature_figure, feature_shading, feature_summary
from inspectors.views.tokens import show_whitespace, token_rows, tokens_html

TOP_CANDIDATES = 5  # candidates per step in the steps table

SHARE_STYLE = """
pre.gi-prompt {white-space: pre-wrap; word-break: break-word;}
.gi-special {background: #c7d2fe; border-radius: 3px; padding: 0 2px; color: #1e1b4b;}
.gi-tokens, .gi-shading {line-height: 2; font-family: ui-monospace, monospace; font-size: 13px;}
.gi-tok, .gi-act {border-radius: 3px; padding: 1px 2px; margin: 1px; white-space: pre;}
.gi-msg {border-left: 4px solid #d1d5db; margin: 0.5em 0; padding: 0.2em 0.8em;}
.gi-msg pre {white-space: pre-wrap; background: none; padding: 0; margin: 0.2em 0;}
.gi-user {border-color: #93c5fd;} .gi-assistant, .gi-model {border-color: #86efac;} .gi-system {border-color: #fcd34d;}
.gi-reply {background: #f0fdf4;}
details {margin: 0.5em 0;} summary {cursor: pointer; color: #374151;}
"""


def share_page(conversation: Any, *, saved_turn: int | None = None, app: str = "", saved_at: str = "") -> str:
    """The whole page for a conversation (`Conversation`, or anything with its `system_prompt`, `branches`
    and `active`). `saved_turn`: the turn saved when only one was (its branch then holds it and the turns
    before it). Each record is shown once, under the first branch that holds it."""
    records = list({id(r): r for b in conversation.branches for r in b.records}.values())  # each once
    models = list(dict.fromkeys(r.model_id for r in records))
    what = "a conversation" if saved_turn is None else f"turn {saved_turn + 1} of a conversation"
    n = len(conversation.branches)
    meta = [f"{len(records)} turn(s) on {n} branch{'es' if n != 1 else ''}", f"model {', '.join(models) or 'none'}"]
    meta += [x for x in (f"saved {saved_at}" if saved_at else "", app) if x]
    system = conversation.system_prompt or ""
    header = [
        f"<h1>Gemma Inspector: {html.escape(what)}</h1>",
        f"<p class='meta'>{html.escape(' · '.join(meta))}</p>",
        "<p class='meta'>Open the .json file saved with this page in Gemma Inspector to explore it further "
        "(attention, the logit lens, why a token) or to re-run it.</p>",
    ]
    if system.strip():
        header.append(f"<div class='gi-msg gi-system'><b>System prompt</b><pre>{html.escape(system)}</pre></div>")
    toc, body, shown = [], [], set()
    for b, branch in enumerate(conversation.branches):
        label = f"Branch {b + 1} · {branch.label}" + (" (active)" if b == conversation.active else "")
        toc.append(f"<li><a href='#branch-{b}'>{html.escape(label)}</a> ({len(branch.records)} turns)</li>")
        body.append(f"<h2 id='branch-{b}'>{html.escape(label)}</h2>")
        if branch.parent is not None and branch.from_turn is not None:
            body.append(
                f"<p class='meta'>Made from branch {branch.parent + 1} at turn {branch.from_turn + 1}; the turns "
                "before it are that branch's, shown there.</p>"
            )
        for t, record in enumerate(branch.records):
            if id(record) in shown:
                continue
            shown.add(id(record))
            body.append(turn_section(record, t, f"b{b}-t{t}"))
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>Gemma Inspector: {html.escape(what)}</title>\n<style>{STYLE}{SHARE_STYLE}</style>\n"
        f"<script type='text/javascript'>{get_plotlyjs()}</script>\n</head>\n<body>\n"
        + "\n".join(header)
        + f"\n<ol>{''.join(toc)}</ol>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def turn_section(record: TurnRecord, turn: int, key: str) -> str:
    """One turn: what made it, the chat, the prompt, the tokens, the next-token steps and the SAE feature."""
    model = record.model_id.rstrip("/").rsplit("/", 1)[-1]
    parts = [
        f"<section id='{key}'>",
        f"<h3>Turn {turn + 1} · {html.escape(model)}</h3>",
        f"<p class='meta'>{html.escape(turn_meta(record))}</p>",
    ]
    made = how_made(record)
    if made:
        parts.append(f"<div class='description'>{markdown_html(made)}</div>")
    parts += ["<h4>Chat</h4>", chat_html(record), "<h4>Prompt, exactly as the model read it</h4>", prompt_html(record)]
    warnings = prompt_warnings(record)
    if warnings:
        parts.append("<ul>" + "".join(f"<li>⚠️ {html.escape(w)}</li>" for w in warnings) + "</ul>")
    parts += ["<h4>Tokens</h4>", tokens_html(record), _details("Every token with its id", _token_table(record))]
    if record.steps.n_steps:
        step = least_sure_step(record)
        piece = show_whitespace(record.tokens[record.n_prompt + step])
        parts += [
            "<h4>Next token</h4>",
            f"<p>The step the model was least sure of: step {step}, {html.escape(repr(piece))} with probability "
            f"{record.steps.chosen_raw_prob[step]:.4f}.</p>",
            _figure(next_token_figure(record, step), f"{key}-next"),
            _details(f"All {record.steps.n_steps} steps: the chosen token and the top candidates", steps_table(record)),
        ]
    sae = record.probes.get("sae")
    if isinstance(sae, SparseActivations):
        values = sae.feature_values
        parts += [
            "<h4>SAE feature</h4>",
            markdown_html(feature_summary(sae, sae.feature, values, record.tokens)),
            shading_html(record, sae),
            _figure(feature_figure(record.tokens, values, sae.feature, sae.layer), f"{key}-sae"),
        ]
    parts.append("</section>")
    return "\n".join(parts)


def turn_meta(record: TurnRecord) -> str:
    p = record.params
    sampling = (
        "greedy"
        if p.get("temperature", 0) == 0
        else f"temperature {p['temperature']:g}, top-k {p.get('top_k') or 'off'}, top-p {p.get('top_p', 1):g}"
    )
    items = [
        f"{record.model_id}",
        f"{record.n_prompt} prompt + {record.steps.n_steps} reply tokens",
        f"stopped by {record.stop_reason}",
        f"{sampling}, seed {p.get('seed')}, max {p.get('max_new_tokens')} new tokens",
    ]
    if record.dtype:
        items.append(f"computed in {record.dtype}")
    if "generate_s" in record.timings:
        items.append(f"generated in {record.timings['generate_s']:.2f} s")
    return " · ".join(items)


def how_made(record: TurnRecord) -> str:
    """Markdown: how the turn was steered, and where its branch came from (empty for a plain turn)."""
    lines = []
    if record.steering:
        s = record.steering
        lines.append(f"**Steered** with {s.get('description', 'a vector')} (vector norm {s.get('norm', 0):.4g}).")
        kl = record.steering_kl
        if kl is not None and len(kl):
            lines.append(
                f"KL(steered ‖ unsteered) per step: mean {float(kl.mean()):.3f} nats, largest {float(kl.max()):.3f}."
            )
    branch = record.branch or {}
    if "step" in branch and "token" in branch:
        lines.append(
            f"**Branch** of turn {branch.get('from_turn', 0) + 1}: regenerated from step {branch['step']} with "
            f"`{show_whitespace(str(branch['token']))}` forced."
        )
    if branch.get("rerun"):
        lines.append(f"**Re-run** of turn {branch.get('from_turn', 0) + 1} with its seed and settings.")
    if record.forced:
        lines.append(f"The reply's first {record.forced} token(s) were given, not sampled.")
    return "  \n".join(lines)


def chat_html(record: TurnRecord) -> str:
    """The messages the turn was prompted with (after the template's system handling and trimming) and the reply."""
    blocks = [
        f"<div class='gi-msg gi-{html.escape(m['role'])}'><b>{html.escape(m['role'])}</b>"
        f"<pre>{html.escape(m['content'])}</pre></div>"
        for m in record.messages
    ]
    blocks.append(
        f"<div class='gi-msg gi-model gi-reply'><b>model</b><pre>{html.escape(record.reply_text)}</pre></div>"
    )
    return "\n".join(blocks)


def least_sure_step(record: TurnRecord) -> int:
    """The step whose generated token had the lowest probability (the turn's most open choice)."""
    return int(np.argmin(record.steps.chosen_raw_prob))


def steps_table(record: TurnRecord, top: int = TOP_CANDIDATES) -> str:
    """A row per reply step: the token generated, its probability raw and after the warpers, the top candidates
    (and the KL to the unsteered distribution, for a steered turn)."""
    steps, kl = record.steps, record.steering_kl
    head = ["step", "token (id)", "p raw", "p after warpers", f"top {top} raw candidates"]
    head += ["KL (nats)"] if kl is not None else []
    rows = []
    for s in range(steps.n_steps):
        token_id = int(record.reply_ids[s])
        candidates = ", ".join(
            f"{show_whitespace(record.candidate_pieces.get(int(i), str(int(i))))} {float(q):.3f}"
            for i, q in zip(steps.raw_ids[s, :top], steps.raw_probs[s, :top], strict=True)
        )
        row = [
            s,
            f"{show_whitespace(record.tokens[record.n_prompt + s])} ({token_id})",
            f"{float(steps.chosen_raw_prob[s]):.4f}",
            f"{float(steps.chosen_warped_prob[s]):.4f}",
            candidates,
        ]
        rows.append(row + ([f"{float(kl[s]):.4f}"] if kl is not None else []))
    return _table(head, rows)


def shading_html(record: TurnRecord, sae: SparseActivations) -> str:
    """Every token shaded by the kept feature's activation (relative to its maximum); hover for the value and
    the token's strongest features."""
    spans = []
    shades = feature_shading(record.tokens, sae.feature_values)
    for i, (piece, shade) in enumerate(shades):
        top = [
            f"{int(f)} ({float(v):.2f})"
            for f, v in zip(sae.top_ids[i, :3], sae.top_values[i, :3], strict=True)
            if v > 0
        ]
        title = f"position {i} · activation {float(sae.feature_values[i]):.3f} · top features: {', '.join(top) or '-'}"
        alpha = max(0.0, min(1.0, shade))
        spans.append(
            f"<span class='gi-act' style='background: rgba(234, 88, 12, {alpha:.3f})' title='{html.escape(title)}'>"
            f"{html.escape(piece)}</span>"
        )
    return "<div class='gi-shading'>" + "".join(spans) + "</div>"


def _token_table(record: TurnRecord) -> str:
    return _table(["position", "id", "token", "part"], token_rows(record))


def _table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _details(summary: str, content: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{content}</details>"


def _figure(fig: Any, div_id: str) -> str:
    plot = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False})
    return f"<figure>{plot}</figure>"
