from django.db import models


class Order(models.Model):
    title = models.CharField(max_length=200)
    email = models.EmailField()
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.title} for {self.email}"


class Confirmation(models.Model):
    """Written by the `send_confirmation` task: one row per task run, keyed by its task id, so a task
    run twice shows up as a refused duplicate instead of passing unnoticed."""

    task_id = models.CharField(max_length=64, unique=True)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="confirmations")
    sent = models.DateTimeField(auto_now_add=True)


class RestockReport(models.Model):
    """Written by the beat entry `restock-report`."""

    task_id = models.CharField(max_length=64, unique=True)
    orders = models.PositiveIntegerField()
    created = models.DateTimeField(auto_now_add=True)
