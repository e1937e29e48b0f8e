"""Prometheus metrics of one daemon: a registry per application, so tests may run several.

With `portald run --workers N` every worker process writes its figures to files in a private
directory named by PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, set up by
daemon/supervisor.py), and any worker's /metrics reads them all: counters and histograms are
summed over the workers (those that died and were restarted included), each gauge says how
its workers' values combine (`multiprocess_mode`)."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def worker_restarts(registry: CollectorRegistry | None) -> Counter:
    """Counted by the supervisor; every worker defines it too, so that it reads 0 (not
    absent) before the first restart and with a single process."""
    return Counter("portald_worker_restarts", "worker processes restarted after they died",
                   registry=registry)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("portald_http_requests", "HTTP requests served",
                                     ["route", "status"], registry=r)
        self.http_latency = Histogram("portald_http_request_duration_seconds", "HTTP request latency",
                                      ["route"], registry=r,
                                      buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.privilege_reloads = Counter("portald_privilege_reloads", "privilege snapshot reloads",
                                         registry=r)
        self.privilege_version = Gauge("portald_privilege_version", "loaded privilege version",
                                       registry=r,
                                       multiprocess_mode="livemin")
        self.listener_connected = Gauge("portald_listener_connected",
                                        "1 while the LISTEN connection is up", registry=r,
                                        multiprocess_mode="livemin")
        # principals read straight from the database because the cache was not vouched for
        self.privilege_direct_reads = Counter("portald_privilege_direct_reads",
                                              "principals read bypassing the cache", registry=r)
        self.mails_sent = Counter("portald_mails_sent", "mails accepted by the SMTP server", registry=r)
        self.mails_failed = Counter("portald_mails_failed", "mails failed permanently", registry=r)
        self.mails_retried = Counter("portald_mails_retried", "temporary delivery failures", registry=r)
        self.mails_dropped = Counter("portald_mails_dropped",
                                     "mails not sent because their recipient may not get them "
                                     "(reason recorded on the outbox row)", registry=r)
        # The queue lives in the database: each instance reports the whole queue (refreshed
        # every few seconds by its mail worker), so any one instance's figure is the truth.
        self.outbox_queued = Gauge("portald_outbox_queued", "mails waiting in the outbox", registry=r,
                                   multiprocess_mode="livemax")
        self.outbox_leased = Gauge("portald_outbox_leased",
                                   "queued mails leased to a sender right now", registry=r,
                                   multiprocess_mode="livemax")
        self.outbox_oldest_age = Gauge("portald_outbox_oldest_queued_age_seconds",
                                       "age of the oldest mail still queued (0: none)", registry=r,
                                       multiprocess_mode="livemax")
        self.logins = Counter("portald_logins", "login attempts", ["result"], registry=r)
        # result: accepted or refused; reason: stored, duplicate, or why it was refused
        self.inbound_replies = Counter("portald_inbound_replies", "replies by mail",
                                       ["result", "reason"], registry=r)
        self.password_checks = Counter("portald_password_checks",
                                       "passwords checked against their hash (logins and "
                                       "password changes)", registry=r)
        self.worker_restarts = worker_restarts(r)
        # the labelled children of the per-request metrics, by their labels: labels() checks
        # and locks on every call, and every request makes two
        self._requests: dict[tuple[str, int], Any] = {}
        self._latencies: dict[str, Any] = {}

    def requests_of(self, route: str, status: int) -> Any:
        """The counter of requests to `route` answered with `status`."""
        child = self._requests.get((route, status))
        if child is None:
            child = self._requests[route, status] = self.http_requests.labels(route, str(status))
        return child

    def latency_of(self, route: str) -> Any:
        """The latency histogram of `route`."""
        child = self._latencies.get(route)
        if child is None:
            child = self._latencies[route] = self.http_latency.labels(route)
        return child

    def render(self) -> bytes:
        if os.environ.get(MULTIPROC_ENV):
            # the whole daemon: every worker's files, read afresh for each scrape
            combined = CollectorRegistry()
            MultiProcessCollector(combined)
            return generate_latest(combined)
        return generate_latest(self.registry)
