"""The report: one self-contained HTML file per checkpoint in the lake, and the figures as asset metadata
(Markdown images) so the Dagster UI shows them on the asset's page. The only asset that draws figures (all
eight, `compute.figures.FIGURES`); they read the lake the run writes to: the IO manager's `lake_url`."""

import base64

import dagster as dg

from assets.cross_sampling import cross_summaries
from assets.summaries import summaries
from assets.trend import trend
from compute import report as reports
from orchestration.wiring import names
from orchestration.wiring.conditions import EAGER
from orchestration.wiring.partitions import checkpoints_partitions


def figure_metadata(drawn: list) -> dict:
    """One Markdown entry per figure: the PNG inline, then its text part (the drill-down's tables)."""
    out = {}
    for fig in drawn:
        if isinstance(fig, str):
            continue
        image = base64.b64encode(fig.png).decode()
        text = f"![{fig.title}](data:image/png;base64,{image})\n\nData: `shiftlake sql {fig.name}`\n\n{fig.markdown}"
        out[f"figure: {fig.name}"] = dg.MetadataValue.md(text)
    missing = [f for f in drawn if isinstance(f, str)]
    if missing:
        out["figures missing"] = dg.MetadataValue.md("\n".join(f"- {m}" for m in missing))
    return out


REFRESH = (EAGER | dg.AutomationCondition.code_version_changed()).with_label(
    "eager: whenever the data of the checkpoint's summaries or of the trend change")


@dg.asset(code_version="2", group_name=names.REPORT, kinds={"html"}, partitions_def=checkpoints_partitions,
          deps=[summaries, cross_summaries, trend], automation_condition=REFRESH)
def report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """`reports/checkpoint=<key>/report.html` in the lake: the eight figures of this checkpoint, each with the
    query it plots (the same as `shiftlake report --checkpoint <key>`)."""
    path, drawn = reports.write_report(context.resources.io_manager.lake_url, context.partition_key)
    context.log.info(f"report: {path}")
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(path), **figure_metadata(drawn)})
