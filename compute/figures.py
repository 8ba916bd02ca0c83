"""The paper's figures as PNG, each drawn from one named query over the lake (the same views as
`shiftlake sql`), so what a figure shows is exactly that query's result, kept beside the image.

    js_percentile_curve   JS by percentile of tokens, log scale, one line per checkpoint and policy
    position_profile      mean JS and share of the top-5%-JS tokens by relative position
    entropy_js_grid       share of tokens per (base-entropy bucket, JS bucket)
    topk_reranking        for tokens with JS > 0.1: RL's top-1 rank in base's ranking, top-k overlap
    cross_sampling_curve  accuracy against the share of switched tokens, with base-only and RL-only lines
    checkpoint_trend      accuracy and JS p50/p95/p99 by step

Knows nothing about Dagster; matplotlib draws off screen (Agg).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import polars as pl

from compute import lakesql

ENTROPY_LABELS = ["<0.01", "0.01-0.1", "0.1-0.5", "0.5-1", ">=1"]
JS_LABELS = ["<1e-4", "1e-4-1e-3", "1e-3-1e-2", "1e-2-0.1", ">=0.1"]
CRITERION_COLORS = {"js": "tab:blue", "random": "tab:gray", "delta_logp": "tab:green", "entropy": "tab:red"}


@dataclass
class Figure:
    name: str
    title: str
    png: bytes
    data: pl.DataFrame  # the query result it plots
    axes_labels: list[tuple[str, str]]  # (x label, y label) of every axes


def _query(name: str, lake_url: str, checkpoint: str | None) -> pl.DataFrame:
    frame = lakesql.run(lakesql.query_text(name), lake_url)
    if checkpoint is not None and "checkpoint" in frame.columns:
        frame = frame.filter(pl.col("checkpoint") == checkpoint)
    return frame


def _finish(name: str, title: str, fig, data: pl.DataFrame, axes: list) -> Figure:
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in axes]
    plt.close(fig)
    return Figure(name, title, buf.getvalue(), data, labels)


def _figure(ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4))
    return fig, (list(axes) if ncols > 1 else [axes])


def js_percentile_curve(lake_url: str, checkpoint: str | None = None) -> Figure:
    data = _query("js_percentile_curve", lake_url, checkpoint)
    fig, (ax,) = _figure()
    for (ckpt, policy), group in data.group_by("checkpoint", "policy", maintain_order=True):
        ax.plot(group["percentile"], group["js"].clip(1e-12), marker=".", label=f"{ckpt} / {policy} tokens")
    ax.set_yscale("log")
    ax.set_xlabel("percentile of tokens")
    ax.set_ylabel("JS divergence (nats, log scale)")
    ax.legend(fontsize=7)
    return _finish("js_percentile_curve", "JS divergence by percentile of tokens", fig, data, [ax])


def position_profile(lake_url: str, checkpoint: str | None = None) -> Figure:
    data = _query("position_profile", lake_url, checkpoint)
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
    return _finish("position_profile", "Where in the response the shift happens", fig, data, [left, right])


def entropy_js_grid(lake_url: str, checkpoint: str | None = None, policy: str = "rl") -> Figure:
    import numpy as np

    data = _query("entropy_js_grid", lake_url, checkpoint)
    grid = np.zeros((len(ENTROPY_LABELS), len(JS_LABELS)))
    for row in data.filter(pl.col("policy") == policy).group_by("entropy_bucket", "js_bucket").agg(pl.col("n_tokens").sum()).iter_rows(named=True):
        grid[row["entropy_bucket"], row["js_bucket"]] = row["n_tokens"]
    grid = grid / max(grid.sum(), 1)
    fig, (ax,) = _figure()
    image = ax.imshow(grid, cmap="viridis", origin="lower")
    ax.set_xticks(range(len(JS_LABELS)), JS_LABELS, rotation=30, fontsize=7)
    ax.set_yticks(range(len(ENTROPY_LABELS)), ENTROPY_LABELS, fontsize=7)
    for (i, j), share in np.ndenumerate(grid):
        ax.text(j, i, f"{share:.1%}", ha="center", va="center", fontsize=6, color="w" if share < 0.3 else "k")
    ax.set_xlabel("JS bucket (nats)")
    ax.set_ylabel("base entropy bucket (nats)")
    fig.colorbar(image, ax=ax, label="share of tokens")
    return _finish("entropy_js_grid", f"Share of {policy} tokens by base entropy and JS", fig, data, [ax])


def topk_reranking(lake_url: str, checkpoint: str | None = None) -> Figure:
    data = _query("topk_reranking", lake_url, checkpoint)
    fig, (left, right) = _figure(2)
    ks = [1, 2, 3, 5, 10]
    for row in data.iter_rows(named=True):
        label = f"{row['checkpoint']} / {row['policy']} (n={row['n_high_js']})"
        left.plot(["=1", "<=3", "<=10"], [row["rl_top1_is_base_top1"], row["rl_top1_in_base_top3"],
                                          row["rl_top1_in_base_top10"]], marker="o", label=label)
        right.plot(ks, [row[f"overlap_top{k}"] for k in ks], marker="o", label=label)
    left.set_xlabel("rank of RL's top-1 token in base's ranking")
    left.set_ylabel("share of tokens with JS > 0.1")
    right.set_xlabel("k")
    right.set_ylabel("top-k overlap (base vs RL)")
    left.legend(fontsize=7)
    return _finish("topk_reranking", "High-JS tokens: reranked, not invented", fig, data, [left, right])


def cross_sampling_curve(lake_url: str, checkpoint: str | None = None) -> Figure:
    data = _query("cross_sampling_curve", lake_url, checkpoint).filter(pl.col("eps").is_finite())
    fig, axes = _figure(2)
    for ax, direction in zip(axes, ("forward", "reverse")):
        part = data.filter(pl.col("direction") == direction)
        for criterion, color in CRITERION_COLORS.items():  # same colour per criterion in both panels
            group = part.filter(pl.col("criterion") == criterion).sort("switched_share")
            if group.height:
                ax.plot(group["switched_share"], group["accuracy"], marker="o", label=criterion, color=color,
                        linestyle="--" if criterion == "random" else "-")
        if part.height:
            ax.axhline(part["base_accuracy"].mean(), color="grey", linestyle=":", label="base alone")
            ax.axhline(part["rl_accuracy"].mean(), color="black", linestyle=":", label="RL alone")
        ax.set_xlabel("share of tokens switched")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{direction} ({'base' if direction == 'forward' else 'RL'} primary)", fontsize=9)
        ax.legend(fontsize=7)
    return _finish("cross_sampling_curve", "Cross-sampling: which tokens matter", fig, data, axes)


def checkpoint_trend(lake_url: str, checkpoint: str | None = None) -> Figure:
    data = _query("checkpoint_trend", lake_url, None)
    fig, (left, right) = _figure(2)
    left.plot(data["step"], data["rl_accuracy"], marker="o", label="RL")
    left.plot(data["step"], data["base_accuracy"], linestyle=":", label="base")
    for q in ("js_p50", "js_p95", "js_p99"):
        right.plot(data["step"], data[q].clip(1e-12), marker="o", label=q)
    right.set_yscale("log")
    left.set_xlabel("RL step")
    left.set_ylabel("accuracy")
    right.set_xlabel("RL step")
    right.set_ylabel("JS of RL tokens (nats, log scale)")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    return _finish("checkpoint_trend", "Across checkpoints", fig, data, [left, right])


FIGURES = (js_percentile_curve, position_profile, entropy_js_grid, topk_reranking, cross_sampling_curve,
           checkpoint_trend)
