import json

from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .models import Order
from .tasks import send_confirmation


@csrf_exempt
@require_http_methods(["GET", "POST"])
def orders(request):
    """POST {"title": ..., "email": ...} creates an order and enqueues its confirmation after the
    commit; GET lists the orders with the task ids of their confirmations."""
    if request.method == "POST":
        try:
            data = json.loads(request.body)
            title, email = str(data["title"]), str(data["email"])
        except (ValueError, KeyError, TypeError):
            return JsonResponse({"error": "expected JSON with title and email"}, status=400)
        with transaction.atomic():
            order = Order.objects.create(title=title, email=email)
            send_confirmation.delay_on_commit(order.pk)
        return JsonResponse({"id": order.pk}, status=201)
    rows = [
        {"id": o.pk, "title": o.title, "email": o.email,
         "confirmations": [c.task_id for c in o.confirmations.all()]}
        for o in Order.objects.prefetch_related("confirmations").order_by("-pk")[:100]
    ]
    return JsonResponse({"orders": rows})
