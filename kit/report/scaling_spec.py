"""The ``scaling`` block of ``Metrics_Framework_Specifications.json``: per service the autoscaling target
(HorizontalPodAutoscaler-style) and the capacity metrics to watch with their thresholds, from the
``scaling`` result (``to_jsonable(kit.analysis.scaling.ScalingAnalysis)``, notebook 60_scaling)."""

from __future__ import annotations

from typing import Any

__all__ = ["scaling_block"]


def _sel(service: str) -> str:
    return 'service="' + service.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _capacity_metrics(s: dict[str, Any]) -> list[dict[str, Any]]:
    """What to watch for one service: load and concurrency per instance, p95, CPU (when measured) and the
    database pool (when measured), each with the threshold the analysis found."""
    sel = _sel(s["service"])
    head, knee, auto = s["headroom"], s["knee"], s["autoscaling"]
    instances = f"count(count by (instance) (process_cpu_seconds_total{{{sel}}}))"
    out = [
        {"name": "requests_per_instance", "unit": "requests/s",
         "promql": f"sum(rate(http_requests_total{{{sel}}}[5m])) / {instances}",
         "threshold": auto.get("requests_per_instance_rps"), "basis": "the autoscaling target (per instance)",
         "baseline": head.get("peak_per_instance_rps")},
        {"name": "concurrency_per_instance", "unit": "requests in flight",
         "promql": f"sum(rate(http_request_duration_seconds_sum{{{sel}}}[5m])) / {instances}",
         "threshold": knee.get("concurrency"), "basis": "Little's law; the concurrency at the knee of p95",
         "baseline": None},
        {"name": "latency_p95", "unit": "seconds",
         "promql": f"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{sel}}}[5m])))",
         "threshold": head["slo_p95_ms"] / 1000.0, "basis": "the latency SLO threshold", "baseline": None},
    ]
    for r in head.get("resources", []):
        if r["resource"] == "cpu" and r.get("metric"):
            out.append({"name": "cpu_utilization", "unit": "ratio",
                        "promql": f"avg(rate({r['metric']}{{{sel}}}[5m]))", "threshold": auto["target_value"]
                        if auto["metric"] == "cpu_utilization" else r["limit"],
                        "basis": "the autoscaling target" if auto["metric"] == "cpu_utilization" else "saturation",
                        "baseline": r.get("at_peak")})
        elif r["resource"] == "db_pool":
            out.append({"name": "db_connection_pool_utilization", "unit": "ratio",
                        "promql": 'sum(pg_stat_activity_count{state="active"}) / max(pg_settings_max_connections)',
                        "threshold": 0.8, "basis": "shared by the services; saturates at 1",
                        "baseline": r.get("at_peak")})
    return out


def scaling_block(scaling: dict[str, Any]) -> dict[str, Any]:
    """The document's ``scaling`` object (valid against ``$defs/scaling`` of its schema)."""
    services = []
    for s in scaling.get("services", []):
        auto, head, fit = s["autoscaling"], s["headroom"], s["fit"]
        services.append({
            "service": s["service"],
            "autoscaling": {
                "metric": auto["metric"], "target_value": auto["target_value"], "target_unit": auto["target_unit"],
                "tolerance": auto["tolerance"], "scale_up_stabilization_s": auto["scale_up_stabilization_s"],
                "scale_down_stabilization_s": auto["scale_down_stabilization_s"],
                "min_instances": auto["min_instances"], "max_instances": auto["max_instances"],
                "margin": auto["margin"], "basis": auto["basis"], "hpa": auto["hpa"], "prose": auto["prose"]},
            "capacity": {
                "instances": head["instances"], "peak_rps": head["peak_rps"],
                "peak_per_instance_rps": head["peak_per_instance_rps"], "knee_rps": s["knee"].get("load_rps"),
                "usl_peak_rps": fit.get("peak_throughput_rps") if fit["verdict"] else None,
                "slo_load_rps": head.get("slo_load_rps"), "growth": head.get("growth"),
                "limited_by": head["limited_by"], "first_to_saturate": head.get("first_to_saturate"),
                "usl_verdict": fit["verdict"], "usl_reason": fit["reason"]},
            "capacity_metrics": _capacity_metrics(s),
        })
    return {"window": {"start": scaling.get("window_start"), "end": scaling.get("window_end")},
            "slo_p95_ms": scaling.get("slo_p95_ms"), "method": scaling.get("method", ""), "services": services}
