"""A Grafana dashboard (JSON model, schemaVersion 39) with the monitoring strategy's panels in PromQL.

Import it in Grafana (Dashboards → New → Import) and pick the Prometheus data source; the ``service``
variable filters every panel. Deterministic: same results and parameters, same JSON."""

from __future__ import annotations

from typing import Any

from kit.config import RunConfig
from kit.report.monitoring import dashboard_panels

__all__ = ["grafana_dashboard"]

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_UNITS = {"overview": "short", "per_service": "short", "per_route": "s", "latency_heatmap": "short",
          "apdex": "percentunit", "slo_burndown": "percentunit", "burn_rate": "short",
          "saturation_latency": "s"}


def _legend(expr: str) -> str:
    for label in ("route", "service", "le"):
        if f"by ({label})" in expr or f"by (le, {label})" in expr:
            return "{{" + label + "}}"
    return ""


def grafana_dashboard(results: dict[str, Any], config: RunConfig) -> dict[str, Any]:
    """The dashboard JSON: one panel per monitoring panel, two per row, PromQL targets."""
    panels = []
    for index, panel in enumerate(dashboard_panels(results, config, 'service=~"$service"')):
        kind = {"timeseries": "timeseries", "heatmap": "heatmap", "table": "table"}[panel["kind"]]
        targets = [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": _legend(expr),
                    "datasource": _DATASOURCE, **({"format": "heatmap"} if kind == "heatmap" else {}),
                    **({"instant": True, "format": "table"} if kind == "table" else {})}
                   for i, expr in enumerate(panel["promql"])]
        panels.append({
            "id": index + 1, "type": kind, "title": panel["title"], "description": panel["description"],
            "datasource": _DATASOURCE, "targets": targets,
            "gridPos": {"h": 9, "w": 12, "x": 12 * (index % 2), "y": 9 * (index // 2)},
            "fieldConfig": {"defaults": {"unit": _UNITS.get(panel["key"], "short")}, "overrides": []},
            "options": {"calculate": False} if kind == "heatmap" else {},
        })
    return {
        "title": f"{config.title}: service health (perfkit)",
        "uid": "perfkit-service-health",
        "tags": ["perfkit", "slo", "red"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
            {"name": "service", "type": "query", "datasource": _DATASOURCE, "label": "service",
             "query": "label_values(http_requests_total, service)", "refresh": 2, "multi": True,
             "includeAll": True, "allValue": ".*",
             "current": {"text": "All", "value": "$__all"}},
        ]},
        "annotations": {"list": [
            {"name": "alerts", "datasource": _DATASOURCE, "enable": True, "iconColor": "red",
             "expr": 'ALERTS{alertstate="firing"}', "titleFormat": "{{alertname}}"},
        ]},
        "panels": panels,
    }
