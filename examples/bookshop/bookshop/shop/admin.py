from django.contrib import admin

from .models import Confirmation, Order, RestockReport

admin.site.register([Order, Confirmation, RestockReport])
