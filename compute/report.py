"""One self-contained HTML report per checkpoint: the eight figures (PNG embedded as base64), each with
the named query it plots, written into the lake at `reports/checkpoint=<key>/report.html`.

Knows nothing about Dagster: the `report` asset and `shiftlake report` both call `write_report`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from html import escape

from compute import figures, lake, lakesql, storage

TABLE, FILE = "reports", "report.html"

STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
section { border-top: 1px solid #ccc; padding: 1em 0; }
img { max-width: 100%; }
code { background: #f3f3f3; padding: 0 .3em; }
.tokens { font-family: monospace; white-space: pre-wrap; line-height: 1.9; }
mark { background: #ffe0a0; } mark.js1 { background: #ff9c5c; } mark.js2, mark.js3 { background: #ffb880; }
table { border-collapse: collapse; font-size: 12px; } td, th { border: 1px solid #ddd; padding: 2px 6px; }
"""


def report_path(lake_url: str, checkpoint: str) -> str:
    return f"{lake.partition_dir(lake_url, TABLE, lake.checkpoint_partition(checkpoint))}/{FILE}"


def draw(make: Callable, lake_url: str, checkpoint: str) -> figures.Figure | str:
    """The figure, or why it cannot be drawn yet (a table it reads is missing or lacks a column)."""
    try:
        return make(lake_url, checkpoint)
    except LookupError as e:
        return f"not available yet: {e}"


def _section(index: int, name: str, fig: figures.Figure | str, question: str) -> str:
    if isinstance(fig, str):
        return (f'<section id="{name}"><h2>{index}. {escape(name)}</h2><p>{escape(question)}</p>'
                f'<p class="missing">{escape(fig)}</p></section>')
    image = base64.b64encode(fig.png).decode()
    return (f'<section id="{name}"><h2>{index}. {escape(fig.title)}</h2><p>{escape(question)}</p>'
            f'<img alt="{escape(fig.title)}" src="data:image/png;base64,{image}">'
            f'{fig.html}<p>Data: <code>shiftlake sql {fig.name}</code> ({fig.data.height} rows; '
            f"<code>sql/queries/{fig.name}.sql</code>).</p></section>")


def render(lake_url: str, checkpoint: str) -> tuple[str, list[figures.Figure | str]]:
    """The report's HTML and its figures (or why one is missing), read from the lake now."""
    with lakesql.one_connection():
        known = lakesql.run("SELECT checkpoint FROM checkpoints", lake_url)["checkpoint"].to_list()
        if checkpoint not in known:
            raise LookupError(f"checkpoint {checkpoint!r} is not in the lake at {storage.resolve_lake_url(lake_url)}"
                              f" (it has: {', '.join(known) or 'none'}); run its checkpoint_job first")
        drawn = [(draw(make, lake_url, checkpoint), make.__name__, question) for make, question in figures.FIGURES]
    body = "".join(_section(i, name, fig, q) for i, (fig, name, q) in enumerate(drawn, 1))
    html = (f"<!doctype html><html><head><meta charset='utf-8'><title>shiftlake: {escape(checkpoint)}</title>"
            f"<style>{STYLE}</style></head><body><h1>shiftlake report: {escape(checkpoint)}</h1>"
            f"<p>Lake <code>{escape(storage.resolve_lake_url(lake_url))}</code>, written "
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}.</p>{body}</body></html>")
    return html, [fig for fig, _, _ in drawn]


def write_report(lake_url: str, checkpoint: str) -> tuple[str, list[figures.Figure | str]]:
    """Render the report and write it into the lake (atomically); returns its path and the figures."""
    html, drawn = render(lake_url, checkpoint)
    path = lake.write_file(lake_url, TABLE, lake.checkpoint_partition(checkpoint), FILE, lambda f: f.write(html.encode()))
    return path, drawn
