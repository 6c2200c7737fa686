"""Delivery: the Redis transport with its publish journal, worker leases and recovery rounds; RabbitMQ
queues; the task request class; idempotent tasks; worker database connections."""
