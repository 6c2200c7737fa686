from celery import shared_task

from .models import Confirmation, Order, RestockReport


@shared_task(bind=True, queue="emails")
def send_confirmation(self, order_id):
    """Stands in for the e-mail: records the confirmation under this run's task id."""
    order = Order.objects.get(pk=order_id)
    Confirmation.objects.create(task_id=self.request.id, order=order)
    return order_id


@shared_task(bind=True)
def restock_report(self):
    """The beat entry (settings: CELERY_BEAT_SCHEDULE); runs on Celery's default queue, `celery`."""
    report = RestockReport.objects.create(task_id=self.request.id, orders=Order.objects.count())
    return report.orders
