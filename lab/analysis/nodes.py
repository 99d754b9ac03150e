"""The nodes under one host (a Slurm run: host `<partition>@<cluster>`, each trial's `node`
beside it): how many trials each node ran, and per point how far the nodes' medians lie apart.

Curves and baselines stay per host (lab.analysis.scaling): a point's speedup is the median over
every node of its curve's 1-CPU point against the median over every node of its own, never one
node against another. This module says what that mixes: `node_table` and `node_spread`, and a
warning (`node_warning`) where the nodes' medians of one point differ by more than a limit.
"""

import pandas as pd

from lab.analysis.trials import measured

SPREAD_WARN = 0.10   # nodes' medians of a point this far apart (max/min - 1): said


def _with_nodes(trials):
    if trials is None or trials.empty or "node" not in trials.columns:
        return None
    rows = trials[trials["node"].notna()]
    return rows if rows["node"].astype(str).nunique() > 1 else None


def node_table(trials):
    """One row per (host, node): trials run there (measured, failed, warm-up counted apart);
    an empty frame where the run has one node or none recorded."""
    rows = _with_nodes(trials)
    if rows is None:
        return pd.DataFrame(columns=["host", "node", "trials", "measured", "failed"])
    good = measured(rows)
    out = []
    for (host, node), group in rows.groupby([rows["host"].astype(str), rows["node"].astype(str)]):
        out.append({"host": host, "node": node, "trials": len(group),
                    "measured": int(good.index.isin(group.index).sum()),
                    "failed": int((group["ok"] != True).sum())})  # noqa: E712 (pandas)
    return pd.DataFrame(out)


def node_spread(trials):
    """One row per point measured on several nodes: its median seconds on each node, and the
    spread max/min - 1 of those medians (0.0: the nodes agree)."""
    rows = _with_nodes(trials)
    columns = ["point_id", "host", "nodes", "medians", "spread"]
    if rows is None:
        return pd.DataFrame(columns=columns)
    good = measured(rows)
    out = []
    for point, group in good.groupby("point_id"):
        medians = group.groupby(group["node"].astype(str))["seconds"].median()
        if len(medians) < 2 or not medians.min() > 0:
            continue
        out.append({"point_id": point, "host": str(group["host"].iloc[0]),
                    "nodes": len(medians), "medians": medians.round(6).to_dict(),
                    "spread": float(medians.max() / medians.min() - 1)})
    return pd.DataFrame(out, columns=columns)


def node_lines(trials):
    """The report's words: trials per node, and the largest node-to-node spread of a point."""
    table = node_table(trials)
    if table.empty:
        return []
    lines = [f"{host}: " + ", ".join(f"node {r.node} {r.trials} trial(s)"
                                     f"{f' ({r.failed} failed)' if r.failed else ''}"
                                     for r in group.itertuples())
             for host, group in table.groupby("host")]
    spread = node_spread(trials)
    if not spread.empty:
        worst = spread.loc[spread["spread"].idxmax()]
        lines.append(f"node-to-node spread of a point's median: at most "
                     f"{worst['spread'] * 100:.1f}% (point {worst['point_id']}: "
                     + ", ".join(f"{n} {s:.4g} s" for n, s in worst["medians"].items()) + ")")
    return lines


def node_warning(trials, limit=SPREAD_WARN):
    """A warning (code nodes-differ) when some point's medians on its nodes lie more than
    `limit` apart: its speedups mix nodes that are not alike; None otherwise."""
    spread = node_spread(trials)
    wide = spread[spread["spread"] > limit] if not spread.empty else spread
    if wide.empty:
        return None
    return {"code": "nodes-differ",
            "message": f"{len(wide)} point(s) ran over {limit * 100:.0f}% slower on one node than "
                       f"on another (worst {wide['spread'].max() * 100:.1f}%); each speedup is "
                       f"over all the nodes' trials, so it mixes unlike nodes",
            "advice": "compare the nodes (`node` in raw.jsonl), or run on a partition of alike "
                      "nodes"}
