"""Benchmark tasks, loaded into the shipped worker (`deploykit-worker --include benchtasks`) and into
the peer baseline (baseline_app), so both run exactly the same task bodies.

Every task records (sent, started, finished) wall-clock times. The containers share the host's
kernel clock, so times taken in the producer and in the worker compare directly. Records are
buffered per process and flushed by a background thread in batches, so the measurement itself adds
one deque append per task instead of one Redis round trip.
"""
import collections
import io
import os
import random
import threading
import time
import urllib.request

import redis
from celery import shared_task
from celery.signals import worker_process_shutdown

_buffer: collections.deque = collections.deque()
_flusher_pid = None
_lock = threading.Lock()


def _sink():
    return redis.Redis.from_url(os.environ["BENCH_SINK_URL"])


def _flush(client) -> None:
    pipe = client.pipeline(transaction=False)
    n = 0
    while _buffer:
        key, line = _buffer.popleft()
        pipe.rpush(key, line)
        n += 1
    if n:
        pipe.execute()


def _flush_forever() -> None:
    client = _sink()
    while True:
        time.sleep(0.02)
        _flush(client)


def _record(key: str, sent: float, started: float) -> None:
    global _flusher_pid
    _buffer.append((key, f"{sent:.6f},{started:.6f},{time.time():.6f}"))
    if _flusher_pid != os.getpid():  # first task in this (possibly forked) process
        with _lock:
            if _flusher_pid != os.getpid():
                _flusher_pid = os.getpid()
                threading.Thread(target=_flush_forever, daemon=True, name="bench-flush").start()


@worker_process_shutdown.connect
def _flush_on_exit(**_):
    # A prefork child recycled by --max-tasks-per-child must not take its last records with it.
    if _buffer:
        _flush(_sink())


@shared_task(name="bench.noop")
def noop(key: str, sent: float) -> None:
    _record(key, sent, time.time())


# The same no-op with one safety setting switched off: what that setting costs (never shipped).
@shared_task(name="bench.noop_early_ack", acks_late=False)
def noop_early_ack(key: str, sent: float) -> None:
    _record(key, sent, time.time())


@shared_task(name="bench.noop_tracked", track_started=True)
def noop_tracked(key: str, sent: float) -> None:
    _record(key, sent, time.time())


@shared_task(name="bench.http_wait")
def http_wait(key: str, sent: float, url: str) -> None:
    """I/O-bound: one HTTP request to the local slow server (answers after a fixed delay)."""
    started = time.time()
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
    _record(key, sent, started)


@shared_task(name="bench.resize")
def resize(key: str, sent: float, seed: int) -> None:
    """CPU-bound: resize a generated 1600x1200 photo-sized image to a thumbnail and encode it."""
    from PIL import Image

    started = time.time()
    rng = random.Random(seed)
    image = Image.effect_noise((1600, 1200), 64 + rng.random() * 32).convert("RGB")
    image = image.resize((800, 600), Image.Resampling.LANCZOS)
    image.thumbnail((256, 256))
    image.save(io.BytesIO(), format="JPEG", quality=85)
    _record(key, sent, started)
