"""Probes and operations: health probes and their dependency checks, outages (503), logging, storage,
the single-beat lock, web drain, rate limits."""
