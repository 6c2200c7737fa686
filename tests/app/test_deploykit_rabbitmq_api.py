"""deploykit.ops.rabbitmq_api without a broker: the URL check behind the start-up refusal, and how the management
API's queue rows become in-flight counts and ages (the rows' shape as RabbitMQ 3.10 and 4.0 answer; the live
tests are in test_app_rabbitmq.py)."""

import pytest

from deploykit.ops import rabbitmq_api


@pytest.mark.parametrize("url,problem", [
    ("http://rabbitmq:15672/", None),
    ("https://mq.internal:15671/prefix/", None),
    ("rabbitmq:15672", "http:// or https://"),
    ("http://:15672/", "names no host"),
    ("http://mq:port/", "not a number"),
    ("http://mq:15672/?x=1", "query or fragment"),
    ("http://app:secret@mq:15672/", "must not carry credentials"),
])
def test_url_problem(url, problem):
    found = rabbitmq_api.url_problem(url)
    assert (found is None) if problem is None else (problem in found), found


def test_endpoint_logs_in_as_the_broker_user_and_names_no_secret():
    from kombu import Connection

    endpoint = rabbitmq_api.Endpoint.from_urls("http://mq:15672", Connection("amqp://app:s3cret@mq:5672/shop"))
    assert endpoint.base == "http://mq:15672/" and endpoint.vhost == "shop"
    assert endpoint.authorization == "Basic YXBwOnMzY3JldA=="  # app:s3cret
    assert "s3cret" not in repr(endpoint.base)


def test_figures_from_queue_rows():
    rows = [
        {"name": "default", "type": "quorum", "messages_ready": 2, "messages_unacknowledged": 3},
        {"name": "classic-busy", "type": "classic", "messages_ready": 1, "messages_unacknowledged": 0,
         "head_message_timestamp": 1_000},
        {"name": "classic-empty", "type": "classic", "messages_ready": 0, "messages_unacknowledged": 1},
        {"name": "fresh"},  # declared a moment ago: no statistics yet
    ]
    in_flight, ages = rabbitmq_api.figures(rows, ["default", "classic-busy", "classic-empty", "fresh", "gone"],
                                           now=1_042.5)
    assert in_flight == {"default": 3, "classic-busy": 0, "classic-empty": 1, "fresh": None}
    assert ages == {"classic-busy": 42.5, "classic-empty": None}  # quorum: no head timestamp; empty: None (0)
