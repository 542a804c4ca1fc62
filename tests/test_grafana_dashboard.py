"""The Grafana dashboard in contrib/ speaks of the metrics syncd serves, and only of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from syncd.metrics import Metrics
from tests.test_metrics import partial_result

DASHBOARD = Path(__file__).resolve().parent.parent / "contrib" / "grafana-dashboard.json"
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}


def served_series() -> set[str]:
    """Every sample name ``/metrics`` serves, once a cycle has finished."""
    metrics = Metrics(60)
    metrics.record_result(partial_result(), 1.0)
    metrics.record_error("GRAPH_AUTH", "no", 1.0)
    metrics.record_counts({"active_users": 1, "inactive_users": 0, "teams": 1})
    text = generate_latest(metrics.registry).decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def expressions(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_series_the_dashboard_queries_is_served() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    served = served_series()
    queried = {name for expr in expressions(dashboard) for name in re.findall(r"\b((?:syncd|process)_[a-z_]+)\b", expr)}
    assert queried, "the dashboard queries nothing"
    assert queried <= served, queried - served
    families = {re.sub(r"_(total|created|bucket|sum|count)$", "", name) for name in served if name.startswith("syncd_")}
    charted = {re.sub(r"_(total|created|bucket|sum|count)$", "", name) for name in queried}
    assert families <= charted, f"not on the dashboard: {families - charted}"


def test_every_variable_used_is_defined_and_panels_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    used = {name for expr in expressions(dashboard) for name in re.findall(r"\$(\w+)", expr)}
    assert used - BUILTIN_VARIABLES <= defined
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
