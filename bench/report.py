"""The table printed at the end of a run, and the JSON written under bench/results/."""

from __future__ import annotations

from typing import Any

from bench.core import Row


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def _goal(row: Row) -> str:
    if row.goal is None:
        return ""
    return f"{'<=' if row.lower_is_better else '>='} {row.goal:g}x"


def table(rows: list[Row], limits: dict[str, float], ocireg_label: str) -> str:
    """A Markdown table: one line per metric, the ratio against its goal, the fraction of
    the physical limit where one applies; zot's figure and ratio when zot ran."""
    with_zot = any(row.zot is not None for row in rows)
    header = [
        "workload",
        "metric",
        "unit",
        ocireg_label,
        "docker-registry",
        "ratio",
        "goal",
        *(["zot", "vs zot"] if with_zot else []),
        "% of limit",
        "note",
    ]
    lines = [header, ["---"] * len(header)]
    for row in rows:
        ratio = row.ratio
        verdict = {None: "", True: " ok", False: " MISS"}[row.meets_goal]
        limit = ""
        if row.limit and row.limit in limits and row.ocireg is not None:
            frac = row.ocireg / limits[row.limit]
            limit = f"{100 * frac:.0f}% of {row.limit}"
            if row.limit_goal is not None:
                limit += " ok" if frac >= row.limit_goal else " MISS"
        lines.append(
            [
                row.workload,
                row.metric,
                row.unit,
                _num(row.ocireg),
                _num(row.peer) + ("" if row.vs == "docker-registry" else f" ({row.vs})"),
                _ratio(ratio) + verdict,
                _goal(row),
                *([_num(row.zot), _ratio(row.ratio_zot)] if with_zot else []),
                limit,
                row.note,
            ]
        )
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def document(rows: list[Row], limits: dict[str, float], meta: dict[str, Any]) -> dict[str, Any]:
    return {**meta, "limits_mib_s": limits, "rows": [r.as_dict(limits) for r in rows]}
