"""SLOs from the run parameters: availability and latency SLOs per service, with PromQL in the naming an
instrumented HTTP service exposes, and objectives proposed from the history when not given."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime

import duckdb
import numpy as np

from kit.analysis.slo.sli import minute_series, propose_target
from kit.analysis.slo.spec import AlertingSpec, SloSpec
from kit.engine import Queryable
from kit.errors import DataError

__all__ = ["default_queries", "slos_from_parameters"]


def default_queries(service: str, kind: str, threshold_ms: float | None) -> tuple[str, str]:
    """PromQL (error, total) for a service's requests, in the naming an instrumented HTTP service exposes:
    ``http_requests_total{service, code}`` and ``http_request_duration_seconds`` (histogram)."""
    sel = f'service="{service}"'
    if kind == "latency":
        le = f"{(threshold_ms or 0) / 1000:g}"
        return (
            f"(\n  sum(rate(http_request_duration_seconds_count{{{sel}}}[{{{{.window}}}}]))\n  -\n"
            f"  sum(rate(http_request_duration_seconds_bucket{{{sel},le=\"{le}\"}}[{{{{.window}}}}]))\n)",
            f"sum(rate(http_request_duration_seconds_count{{{sel}}}[{{{{.window}}}}]))",
        )
    return (
        f"sum(rate(http_requests_total{{{sel},code=~\"5..\"}}[{{{{.window}}}}]))",
        f"sum(rate(http_requests_total{{{sel}}}[{{{{.window}}}}]))",
    )


def _alert_name(service: str, kind: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", service)
    camel = "".join(w[:1].upper() + w[1:] for w in words if w)
    return f"{camel or 'Service'}{'Latency' if kind == 'latency' else 'Availability'}SloBurn"


def slos_from_parameters(con: duckdb.DuckDBPyConnection, services: list[str], *, start: datetime,
                         end: datetime, availability_target: float | None, latency_threshold_ms: float,
                         latency_target: float | None, window_days: float, engine: Queryable | None = None
                         ) -> list[tuple[SloSpec, tuple[np.ndarray, np.ndarray]]]:
    """Availability and latency SLOs for each service (all services in the warehouse when empty), with
    their per-minute series; targets not given are proposed from the history (and the spec says so)."""
    if not services:
        services = [r[0] for r in con.execute(
            "SELECT DISTINCT service FROM requests WHERE service IS NOT NULL ORDER BY 1").fetchall()]
    if not services:
        from kit.analysis.coverage import NEEDS

        if not con.execute("SELECT count(*) FROM requests").fetchone()[0]:  # type: ignore[index]
            raise DataError(NEEDS["requests"].sentence())
        raise DataError("no request names its service, so no SLO can be defined: re-ingest the log with "
                        "`perfkit ingest access-log --replace` (which names the service) or pass --service")
    timed = {r[0] for r in con.execute(
        "SELECT service FROM requests WHERE latency_ms IS NOT NULL GROUP BY 1").fetchall()}
    out = []
    for service in services:
        kinds = (("availability", availability_target), ("latency", latency_target))
        for kind, target in kinds if service in timed else kinds[:1]:  # no request time: no latency SLO
            error_q, total_q = default_queries(service, kind, latency_threshold_ms)
            spec = SloSpec(
                name=f"requests-{kind}", service=service, objective=target or 0.99,
                objective_percent=(target or 0.99) * 100, window_days=window_days, sli_kind=kind,
                error_query=error_q, total_query=total_q,
                latency_threshold_ms=latency_threshold_ms if kind == "latency" else None,
                alerting=AlertingSpec(name=_alert_name(service, kind),
                                      labels={"category": kind},
                                      page_labels={"severity": "critical"},
                                      ticket_labels={"severity": "warning"}),
                objective_source="given", warehouse_service=service,
            )
            series = minute_series(engine if engine is not None else con, spec, start, end)
            if target is None:
                proposal = propose_target(*series)
                spec = replace(spec, objective=proposal.target, objective_percent=proposal.target * 100,
                               objective_source="proposed", proposal_note=proposal.basis)
            out.append((spec, series))
    return out

