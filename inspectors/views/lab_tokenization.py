"""Lab 3 views: the sentence's tokens as a table (position, id, token), whitespace made visible."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from inspectors.views.tokens import show_whitespace

if TYPE_CHECKING:
    from inspectors.labs.tokenization import TokenizationResult

N_FIGURES = 1


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def token_rows(result: TokenizationResult) -> list[list[Any]]:
    """[position, id, token with visible whitespace] for every token."""
    return [[i, t, show_whitespace(p)] for i, (t, p) in enumerate(zip(result.ids, result.tokens, strict=True))]


def figures(result: TokenizationResult) -> list[tuple[str, go.Figure]]:
    rows = token_rows(result)
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[], [], []]
    fig = go.Figure(
        go.Table(
            header={"values": ["position", "id", "token"], "fill_color": "#c7d2fe", "align": "left"},
            cells={"values": columns, "align": "left"},
        )
    )
    title = f"Tokens of the sentence ({result.n_tokens} tokens, no special tokens)"
    fig.update_layout(title=title, height=min(900, 26 * len(rows) + 120), margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return [(title, fig)]


def summary_markdown(result: TokenizationResult) -> str:
    lines = [
        f"**Sentence:** {result.sentence}",
        "",
        f"`{result.model_id}` splits it into **{result.n_tokens} tokens** (`add_special_tokens=False`; "
        "`␣` marks a space, `↵` a newline).",
        "",
        "| position | token | id |",
        "|---:|---|---:|",
    ]
    lines += [f"| {i} | `{_cell(piece)}` | {token_id} |" for i, token_id, piece in token_rows(result)]
    return "\n".join(lines) + "\n"
