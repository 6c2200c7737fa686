"""The collector's snapshot as Prometheus gauges, on the registry the project's /metrics serves
(django-prometheus, prometheus_client's default). Labels are queues and pools, never pods or task ids:
every web process exports the same values, and alert rules aggregate them with max by (queue)."""

from __future__ import annotations

import calendar
import datetime
from collections import Counter

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from . import collector as state


NAMES = ("deploykit_broker_up", "deploykit_database_up", "deploykit_queue_messages", "deploykit_queue_consumers",
         "deploykit_queue_oldest_message_age_seconds", "deploykit_queue_in_flight_messages", "deploykit_pool_workers",
         "deploykit_beat_last_tick_timestamp_seconds")


class DeploymentCollector:
    """A prometheus_client custom collector: reads the shared snapshot at each scrape."""

    def __init__(self, source: state.Collector | None = None):
        self._source = source

    @property
    def source(self) -> state.Collector:
        return self._source or state.shared  # read at each scrape: the module's snapshot may be replaced

    def describe(self):
        # Names only: without describe() prometheus_client would collect (a broker round trip) at register().
        return [GaugeMetricFamily(name, "") for name in NAMES]

    def collect(self):
        snapshot, _age = self.source.snapshot()
        up_broker = GaugeMetricFamily("deploykit_broker_up", "1 when the task broker accepted a connection")
        up_broker.add_metric([], 1.0 if snapshot["broker"]["ok"] else 0.0)
        up_database = GaugeMetricFamily("deploykit_database_up", "1 when the database answered")
        up_database.add_metric([], 1.0 if snapshot["database"]["ok"] else 0.0)
        yield from (up_broker, up_database)

        messages = GaugeMetricFamily("deploykit_queue_messages", "Messages waiting in the broker", labels=["queue"])
        consumers = GaugeMetricFamily("deploykit_queue_consumers", "Workers consuming the queue", labels=["queue"])
        oldest = GaugeMetricFamily("deploykit_queue_oldest_message_age_seconds", "Seconds since the oldest waiting "
                                   "message was published (Redis; RabbitMQ classic queues with the management "
                                   "API; 0 when empty)", labels=["queue"])
        in_flight = GaugeMetricFamily("deploykit_queue_in_flight_messages", "Messages workers took and have not "
                                      "acknowledged: prefetched, waiting for an ETA or rate limit, running (Redis; "
                                      "RabbitMQ with the management API)",
                                      labels=["queue"])
        for name, queue in sorted(snapshot["queues"].items()):
            if queue.get("in_flight") is not None:
                in_flight.add_metric([name], float(queue["in_flight"]))
            if queue.get("backlog") is not None:
                messages.add_metric([name], float(queue["backlog"]))
            consumers.add_metric([name], float(len(queue["consumers"])))
            age = queue.get("oldest_age_seconds")
            if age is not None or (queue.get("backlog") == 0 and "oldest_age_seconds" in queue):
                oldest.add_metric([name], float(age or 0.0))  # unknown (a message without the header): absent
        yield from (messages, consumers, oldest, in_flight)

        pools = GaugeMetricFamily("deploykit_pool_workers", "Workers answering, per pool (node name before @)",
                                  labels=["pool"])
        for pool, count in sorted(Counter(map(state.pool_of, snapshot["workers"])).items()):
            pools.add_metric([pool], float(count))
        yield pools

        last_run = snapshot["beat"].get("last_run")
        if last_run:
            tick = GaugeMetricFamily("deploykit_beat_last_tick_timestamp_seconds", "Unix time of beat's last tick")
            moment = datetime.datetime.fromisoformat(last_run)
            tick.add_metric([], calendar.timegm(moment.utctimetuple()) + moment.microsecond / 1e6)
            yield tick


_registered = False


def register() -> None:
    """Add the collector to prometheus_client's default registry, once."""
    global _registered
    if not _registered:
        REGISTRY.register(DeploymentCollector())
        _registered = True
