"""The divergence-weighted advantage: its token weights along each checkpoint's own rollouts, and the training curves
of an A/B that tried it."""

import dagster as dg
import polars as pl

from compute import tables
from compute.curves import load_curves
from compute.settings import ADVANTAGE_WEIGHTING
from compute.summaries import markdown_table
from orchestration.wiring import names
from orchestration.wiring.partitions import checkpoints_partitions
from orchestration.wiring.resources import StudyResource


@dg.asset(code_version="1", group_name=names.ANALYSIS, kinds={"polars"}, partitions_def=checkpoints_partitions)
def advantage_weights(context: dg.AssetExecutionContext, study: StudyResource,
                      token_shifts: pl.DataFrame) -> pl.DataFrame:
    """w_t = 1 + s (sigmoid(alpha D_t) - 1/2) for every token of this checkpoint's rollouts, D_t its KL(policy ||
    base) by default (SHIFTLAKE_ADVANTAGE_DIVERGENCE, _ALPHA, _SCALE): what the paper's divergence-weighted advantage
    multiplies each token's advantage by. Join keys: rollout_id, position (`compute.advantages` applies the same
    weights online, inside a trainer's loss)."""
    cfg = study.settings()
    kind, alpha, s = cfg.advantage()
    frame = tables.advantage_weights(token_shifts, kind, alpha, s)
    spread = frame.select(
        pl.len().alias("tokens"), pl.col("weight").min().alias("min"), pl.col("weight").quantile(0.5).alias("p50"),
        pl.col("weight").mean().alias("mean"), pl.col("weight").quantile(0.99).alias("p99"),
        pl.col("weight").max().alias("max"))
    context.add_output_metadata({ADVANTAGE_WEIGHTING: cfg.advantage_weighting(),
                                 "weights": dg.MetadataValue.md(markdown_table(spread, spread.columns))})
    return frame


@dg.asset(code_version="1", group_name=names.TREND, kinds={"polars"}, output_required=False)
def training_curves(context: dg.AssetExecutionContext, study: StudyResource):
    """Evaluation curves of training runs to compare, from AB_CURVES_URL (`compute.curves`): in the toy world, GRPO
    with and without divergence-weighted advantages over several seeds (`shiftlake demo --ab`). The named query
    `advantage_ab` and its figure compare the arms with intervals. Nothing is written while AB_CURVES_URL is unset."""
    url = study.settings().ab_curves_url
    if not url:
        context.log.info("AB_CURVES_URL is unset: no training curves to compare")
        return
    frame = load_curves(url)
    context.add_output_metadata({"source": dg.MetadataValue.path(url), "arms": ", ".join(frame["arm"].unique().sort()),
                                 "seeds": frame["seed"].n_unique(), "steps": frame["step"].n_unique()})
    yield dg.Output(frame)
