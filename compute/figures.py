"""The paper's figures as PNG, each drawn from one named query over the lake (the same views as
`shiftlake sql`), so what a figure shows is exactly that query's result, kept beside the image.

    js_percentile_curve   JS by percentile of tokens, log scale, one line per checkpoint and policy
    position_profile      mean JS and share of the top-5%-JS tokens by relative position
    entropy_js_grid       share of tokens per (base-entropy bucket, JS bucket)
    topk_reranking        for tokens with JS > 0.1: RL's top-1 rank in base's ranking, top-k overlap
    cross_sampling_curve  accuracy against the share of switched tokens, with base-only and RL-only lines
    checkpoint_trend      accuracy and JS p50/p95/p99 by step, one line per role (rl; sft)
    advantage_ab          an A/B's accuracy curves by arm (GRPO with and without weighted advantages), and each arm
                          minus the reference arm, with intervals over seeds and problems
    token_drilldown       the 20 highest-JS positions of the three most-shifted RL responses, with both
                          models' top-5 alternatives (also as HTML and Markdown: text with the tokens marked)

Drawn for one checkpoint, the sparsity, position, reranking and cross-sampling figures also draw the checkpoints of
other roles at its step (an SFT run's beside an RL run's: `counterparts`), their own policy's tokens only, so each
compares the roles. Knows nothing about Dagster; matplotlib draws off screen (Agg).

Kept whole although over 250 lines: the eight figures and `FIGURES` share one discipline (`_query`,
`_finish`), and a reader compares them side by side.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import polars as pl

from compute import lakesql

ROLE_STYLES = {"rl": "-", "sft": "--"}  # line style per checkpoint role in the trend
CRITERION_COLORS = {"js": "tab:blue", "random": "tab:gray", "delta_logp": "tab:green", "entropy": "tab:red"}
DPI = 110  # the figures' own and their PNGs': the layout and the PNG then measure their text with one renderer


@dataclass
class Figure:
    name: str
    title: str
    png: bytes
    data: pl.DataFrame  # the query result it plots
    axes_labels: list[tuple[str, str]]  # (x label, y label) of every axes
    html: str = ""  # what an image cannot show well (the drill-down's text), for the report
    markdown: str = ""  # the same for the Dagster UI


def counterparts(lake_url: str, checkpoint: str) -> list[str]:
    """The analysed checkpoints of other roles at `checkpoint`'s step (the SFT run's `sft-step-000100` for
    `rl-step-000100`, and the other way round), in role order."""
    rows = lakesql.run("SELECT checkpoint, role, step FROM checkpoints WHERE role <> 'base' ORDER BY role, checkpoint",
                       lake_url)
    me = rows.filter(pl.col("checkpoint") == checkpoint)
    if me.is_empty() or me["step"][0] is None:
        return []
    return rows.filter((pl.col("step") == me["step"][0]) & (pl.col("role") != me["role"][0]))["checkpoint"].to_list()


def _query(name: str, lake_url: str, checkpoint: str | None, compare: bool = False) -> pl.DataFrame:
    """The named query's rows of `checkpoint` (None: all), with its `counterparts`' own-policy rows if `compare`."""
    frame = lakesql.run(lakesql.query_text(name), lake_url)
    if checkpoint is None or "checkpoint" not in frame.columns:
        return frame
    others = pl.col("checkpoint").is_in(counterparts(lake_url, checkpoint) if compare else [])
    if "policy" in frame.columns:
        others = others & (pl.col("policy") == "rl")
    return frame.filter((pl.col("checkpoint") == checkpoint) | others)


def _finish(name: str, title: str, fig, data: pl.DataFrame, axes: list, checkpoint: str | None) -> Figure:
    """The PNG and its data; the title names the checkpoint drawn (pages show one partition's figures at a time)
    and the other roles' checkpoints drawn beside it."""
    import matplotlib.image
    import matplotlib.pyplot as plt

    if checkpoint:
        others = [] if "checkpoint" not in data.columns else [c for c in data["checkpoint"].unique(maintain_order=True)
                                                              if c != checkpoint]
        title = f"{title} ({checkpoint}" + (f", beside {', '.join(others)})" if others else ")")
    fig.suptitle(title)
    fig.tight_layout()
    fig.canvas.draw()  # drawn once: `savefig` draws a figure laid out by `tight_layout` twice, the first time unseen
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, fig.canvas.buffer_rgba(), format="png", dpi=DPI, origin="upper")  # savefig's PNG
    labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in axes]
    plt.close(fig)
    return Figure(name, title, buf.getvalue(), data, labels)


def _yerr(data: pl.DataFrame, column: str):
    """Error bar lengths below and above `column` from its interval columns `<column>_lo`, `<column>_hi`."""
    import numpy as np

    value = data[column].cast(pl.Float64).to_numpy()
    return np.vstack([value - data[f"{column}_lo"].cast(pl.Float64).to_numpy(),
                      data[f"{column}_hi"].cast(pl.Float64).to_numpy() - value])


def _figure(ncols: int = 1, nrows: int = 1, size: tuple[float, float] | None = None):
    """A figure and its axes as a flat list (row by row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=size or (5.5 * ncols, 4 * nrows), squeeze=False, dpi=DPI)
    return fig, list(axes.flat)


def js_percentile_curve(lake_url: str, checkpoint: str | None = None) -> Figure:
    data = _query("js_percentile_curve", lake_url, checkpoint, compare=True)
    fig, (ax,) = _figure()
    for (ckpt, policy), group in data.group_by("checkpoint", "policy", maintain_order=True):
        ax.plot(group["percentile"], group["js"].clip(1e-12), marker=".", label=f"{ckpt} / {policy} tokens")
    ax.set_yscale("log")
    ax.set_xlabel("percentile of tokens")
    ax.set_ylabel("JS divergence (nats, log scale)")
    ax.legend(fontsize=7)
    return _finish("js_percentile_curve", "JS divergence by percentile of tokens", fig, data, [ax], checkpoint)


def position_profile(lake_url: str, checkpoint: str | None = None) -> Figure:
    data = _query("position_profile", lake_url, checkpoint, compare=True)
    fig, (left, right) = _figure(2)
    for (ckpt, policy), group in data.group_by("checkpoint", "policy", maintain_order=True):
        x = (group["rel_position_from"] + group["rel_position_to"]) / 2
        left.plot(x, group["mean_js"], marker="o", label=f"{ckpt} / {policy}")
        right.plot(x, group["share_of_top5pct"], marker="o", label=f"{ckpt} / {policy}")
    left.set_xlabel("relative position in the response")
    left.set_ylabel("mean JS (nats)")
    right.set_xlabel("relative position in the response")
    right.set_ylabel("share of the top-5%-JS tokens")
    left.legend(fontsize=7)
    return _finish("position_profile", "Where in the response the shift happens", fig, data, [left, right], checkpoint)


def entropy_js_grid(lake_url: str, checkpoint: str | None = None, policy: str = "rl") -> Figure:
    import numpy as np

    data = _query("entropy_js_grid", lake_url, checkpoint)
    entropy_labels, js_labels = lakesql.constant("entropy_bucket_labels()"), lakesql.constant("js_bucket_labels()")
    grid = np.zeros((len(entropy_labels), len(js_labels)))
    for row in data.filter(pl.col("policy") == policy).group_by("entropy_bucket", "js_bucket").agg(pl.col("n_tokens").sum()).iter_rows(named=True):
        grid[row["entropy_bucket"], row["js_bucket"]] = row["n_tokens"]
    grid = grid / max(grid.sum(), 1)
    fig, (ax,) = _figure()
    image = ax.imshow(grid, cmap="viridis", origin="lower")
    ax.set_xticks(range(len(js_labels)), js_labels, rotation=30, fontsize=7)
    ax.set_yticks(range(len(entropy_labels)), entropy_labels, fontsize=7)
    for (i, j), share in np.ndenumerate(grid):
        ax.text(j, i, f"{share:.1%}", ha="center", va="center", fontsize=6, color="w" if share < 0.3 else "k")
    ax.set_xlabel("JS bucket (nats)")
    ax.set_ylabel("base entropy bucket (nats)")
    fig.colorbar(image, ax=ax, label="share of tokens")
    return _finish("entropy_js_grid", f"Share of {policy} tokens by base entropy and JS", fig, data, [ax], checkpoint)


def topk_reranking(lake_url: str, checkpoint: str | None = None) -> Figure:
    data = _query("topk_reranking", lake_url, checkpoint, compare=True)
    buckets = dict(zip(("rank_1", "rank_2", "rank_3", "rank_4_10", "rank_gt_10"), lakesql.constant("rank_bucket_labels()")))
    high_js = lakesql.constant("high_js()")
    fig, (left, right) = _figure(2)
    ks = list(range(1, 11))
    width = 0.8 / max(data.height, 1)
    for i, row in enumerate(data.iter_rows(named=True)):
        label = f"{row['checkpoint']} / {row['policy']} (n={row['n_high_js']})"
        left.bar([b + i * width for b in range(len(buckets))], [row[c] for c in buckets], width,
                 label=label)
        right.plot(ks, [row[f"overlap_top{k}"] for k in ks], marker="o", label=label)
    left.set_xticks([b + 0.4 - width / 2 for b in range(len(buckets))], list(buckets.values()))
    left.set_xlabel("rank of RL's top-1 token in base's ranking")
    left.set_ylabel(f"share of tokens with JS > {high_js:g}")
    right.set_xticks(ks)
    right.set_xlabel("k")
    right.set_ylabel("top-k overlap (base vs RL)")
    if data.height:
        left.legend(fontsize=7)
    else:
        left.text(0.5, 0.5, f"no token with JS > {high_js:g}", ha="center", va="center", transform=left.transAxes)
    return _finish("topk_reranking", "High-JS tokens: reranked, not invented", fig, data, [left, right], checkpoint)


def cross_sampling_curve(lake_url: str, checkpoint: str | None = None) -> Figure:
    data = _query("cross_sampling_curve", lake_url, checkpoint, compare=True).filter(pl.col("eps").is_finite())
    fig, axes = _figure(2)
    drawn = data["checkpoint"].unique(maintain_order=True).to_list()
    mine = [checkpoint] if checkpoint is not None else drawn[:1]  # every criterion and line; other roles' js curve
    for ax, direction in zip(axes, ("forward", "reverse")):
        part = data.filter(pl.col("direction") == direction)
        for criterion, color in CRITERION_COLORS.items():  # same colour per criterion in both panels
            group = part.filter(pl.col("criterion") == criterion, pl.col("checkpoint").is_in(mine)).sort("switched_share")
            if group.height:
                ax.errorbar(group["switched_share"], group["accuracy"], yerr=_yerr(group, "accuracy"), marker="o",
                            label=criterion, color=color, linestyle="--" if criterion == "random" else "-",
                            capsize=2, elinewidth=0.8)
        mine_part = part.filter(pl.col("checkpoint").is_in(mine))
        if mine_part.height:
            ax.axhline(mine_part["base_accuracy"].mean(), color="grey", linestyle=":", label="base alone")
            ax.axhline(mine_part["rl_accuracy"].mean(), color="black", linestyle=":", label="RL alone")
        for other in (c for c in drawn if c not in mine):
            group = part.filter(pl.col("criterion") == "js", pl.col("checkpoint") == other).sort("switched_share")
            if group.height:
                ax.errorbar(group["switched_share"], group["accuracy"], yerr=_yerr(group, "accuracy"), marker="s",
                            label=f"{other}: js", color="tab:purple", capsize=2, elinewidth=0.8)
                ax.axhline(group["rl_accuracy"].mean(), color="tab:purple", linestyle=":", label=f"{other} alone")
        ax.set_xlabel("share of tokens switched")
        ax.set_ylabel("accuracy (95% bootstrap interval over problems)")
        ax.set_title(f"{direction} ({'base' if direction == 'forward' else 'RL'} primary)", fontsize=9)
        ax.legend(fontsize=7)
    return _finish("cross_sampling_curve", "Cross-sampling: which tokens matter", fig, data, axes, checkpoint)


def checkpoint_trend(lake_url: str, checkpoint: str | None = None) -> Figure:
    """All checkpoints (`checkpoint` is ignored)."""
    data = _query("checkpoint_trend", lake_url, None)
    fig, (left, right) = _figure(2)
    for (role,), part in data.group_by("role", maintain_order=True):
        style = ROLE_STYLES.get(role, "-.")
        left.errorbar(part["step"], part["rl_accuracy"], yerr=_yerr(part, "rl_accuracy"), marker="o", capsize=3,
                      linestyle=style, label=role.upper())
        for q, color in zip(("js_p50", "js_p95", "js_p99"), ("tab:blue", "tab:orange", "tab:green")):
            right.plot(part["step"], part[q].clip(1e-12), marker="o", linestyle=style, color=color, label=f"{role} {q}")
    base = data.unique("step", keep="first", maintain_order=True).sort("step")
    left.plot(base["step"], base["base_accuracy"], linestyle=":", color="grey", label="base")
    left.fill_between(base["step"], base["base_accuracy_lo"], base["base_accuracy_hi"], color="grey", alpha=0.2)
    right.set_yscale("log")
    left.set_xlabel("training step")
    left.set_ylabel("accuracy (95% bootstrap interval over problems)")
    right.set_xlabel("training step")
    right.set_ylabel("JS of each checkpoint's tokens (nats, log scale)")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    return _finish("checkpoint_trend", "Across checkpoints", fig, data, [left, right], None)


def advantage_ab(lake_url: str, checkpoint: str | None = None) -> Figure:
    """The training curves of the A/B (`checkpoint` is ignored: the runs are not checkpoints of the study)."""
    data = _query("advantage_ab", lake_url, None)
    fig, (left, right) = _figure(2)
    for (arm,), part in data.group_by("arm", maintain_order=True):
        line = left.errorbar(part["step"], part["accuracy"], yerr=_yerr(part, "accuracy"), marker="o", capsize=3,
                             label=f"{arm} ({part['n_seeds'].max()} seeds)")
        left.fill_between(part["step"], part["seed_min"], part["seed_max"], alpha=0.15, color=line[0].get_color())
        if arm != part["reference_arm"][0]:
            right.errorbar(part["step"], part["minus_reference"], yerr=_yerr(part, "minus_reference"), marker="o",
                           capsize=3, color=line[0].get_color(), label=f"{arm} - {part['reference_arm'][0]}")
    right.axhline(0, color="grey", linestyle=":")
    left.set_xlabel("training step")
    left.set_ylabel("accuracy (95% interval; band: range over seeds)")
    right.set_xlabel("training step")
    right.set_ylabel("accuracy difference (paired 95% interval)")
    left.legend(fontsize=7)
    if data.height:
        right.legend(fontsize=7)
    return _finish("advantage_ab", "A/B: GRPO with and without divergence-weighted advantages", fig, data,
                   [left, right], None)


DRILLDOWN_TOP = 20  # highest-JS positions marked per response


def _alternatives(ids, probs, decode) -> str:
    return ", ".join(f"{decode(int(i))!r} {p:.2f}" for i, p in zip(ids, probs))


def _drilldown_text(data: pl.DataFrame, decode) -> tuple[str, str]:
    """The responses as HTML (tokens marked with their JS rank, alternatives on hover and in a table) and
    as Markdown (a table per response)."""
    from html import escape

    html, md = [], []
    for (rollout_id,), response in data.group_by("rollout_id", maintain_order=True):
        first = response.row(0, named=True)
        verdict = {True: "correct", False: "wrong"}.get(first["correct"], "unscored")
        head = f"{rollout_id} (problem {first['problem_id']}, {verdict}, {response.height} tokens)"
        spans, rows = [], []
        for t in response.iter_rows(named=True):
            text = escape(t["token_text"]).replace("\n", "&#8629;<br>")
            if t["js_rank"] <= DRILLDOWN_TOP:
                hover = escape(f"JS {t['js']:.3f}; base: {_alternatives(t['top5_ids_base'], t['top5_p_base'], decode)}"
                               f"; RL: {_alternatives(t['top5_ids_rl'], t['top5_p_rl'], decode)}")
                rank = t["js_rank"]
                spans.append(f'<mark class="js{min(rank, 5)}" title="{hover}">{text}<sup>{rank}</sup></mark>')
            else:
                spans.append(text)
        for t in response.filter(pl.col("js_rank") <= DRILLDOWN_TOP).sort("js_rank").iter_rows(named=True):
            rows.append((t["js_rank"], t["position"], repr(t["token_text"]), f"{t['js']:.3f}", f"{t['p_base']:.2f}",
                         f"{t['p_rl']:.2f}", _alternatives(t["top5_ids_base"], t["top5_p_base"], decode),
                         _alternatives(t["top5_ids_rl"], t["top5_p_rl"], decode)))
        header = ("JS rank", "position", "token", "JS", "p base", "p RL", "base top-5", "RL top-5")
        table = "".join(f"<tr>{''.join(f'<td>{escape(str(c))}</td>' for c in row)}</tr>" for row in rows)
        html.append(f'<div class="drilldown"><h4>{escape(head)}</h4><p class="tokens">{"".join(spans)}</p>'
                    f"<table><tr>{''.join(f'<th>{h}</th>' for h in header)}</tr>{table}</table></div>")
        cell = lambda c: str(c).replace("|", "\\|").replace("\n", "\\n")  # noqa: E731
        md.append(f"**{head}**\n\n| {' | '.join(header)} |\n|{'---|' * len(header)}\n"
                  + "".join(f"| {' | '.join(cell(c) for c in row)} |\n" for row in rows))
    return "\n".join(html), "\n".join(md)


def _base_decoder(lake_url: str):
    """Token id -> text with the base model's tokenizer (the one both models share)."""
    from transformers import AutoTokenizer

    from compute.models import local_copy

    uri = lakesql.run("SELECT uri FROM checkpoints WHERE role = 'base' LIMIT 1", lake_url).item()
    tokenizer = AutoTokenizer.from_pretrained(local_copy(uri))
    return lambda token_id: tokenizer.decode([token_id])


def token_drilldown(lake_url: str, checkpoint: str | None = None) -> Figure:
    data = _query("token_drilldown", lake_url, checkpoint)
    responses = data.partition_by("checkpoint", "rollout_id", maintain_order=True)
    rows = max(len(responses), 1)
    fig, plt_axes = _figure(nrows=rows, size=(11, 2.4 * rows + 0.6))
    for ax, response in zip(plt_axes, responses):
        top = response["js_rank"] <= DRILLDOWN_TOP
        ax.bar(response["position"], response["js"], color=["tab:orange" if t else "tab:blue" for t in top])
        for t in response.filter(pl.col("js_rank") <= 5).iter_rows(named=True):
            ax.annotate(repr(t["token_text"]), (t["position"], t["js"]), ha="center", va="bottom", fontsize=7)
        ax.margins(y=0.25)
        ax.set_title(response["rollout_id"][0], fontsize=8)
        ax.set_xlabel("position in the response")
        ax.set_ylabel("JS (nats)")
    if not responses:
        plt_axes[0].set_xlabel("position in the response")
        plt_axes[0].set_ylabel("JS (nats)")
    html, md = _drilldown_text(data, _base_decoder(lake_url)) if data.height else ("", "")
    figure = _finish("token_drilldown", f"The {DRILLDOWN_TOP} highest-JS positions (orange) of the most-shifted "
                     "RL responses", fig, data, plt_axes, checkpoint)
    figure.html, figure.markdown = html, md
    return figure


FIGURES = (  # (figure, what it answers), in the paper's order: the report's sections, the report asset's metadata
    (js_percentile_curve, "How sparse is the shift? Most tokens barely move; a few move a lot."),
    (position_profile, "Where in the response do the large shifts sit?"),
    (entropy_js_grid, "Do large shifts happen where the base model was uncertain?"),
    (topk_reranking, "At high-JS tokens, does RL pick something base already ranked high?"),
    (cross_sampling_curve, "Which tokens matter: a few RL tokens recover RL's accuracy (forward), a few base tokens "
                           "bring it back down (reverse); a random control at the same budget."),
    (checkpoint_trend, "How accuracy and the JS percentiles grow across checkpoints."),
    (advantage_ab, "Does weighting each token's advantage by its divergence from the base (the paper's section on using "
                   "the findings) train a better policy than plain GRPO, on the same compute? (`shiftlake demo --ab`)"),
    (token_drilldown, "The highest-JS tokens in context, with both models' top-5 alternatives (hover a marked token)."),
)
