from django.contrib import admin
from django.urls import path

from bookshop.shop import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("orders/", views.orders, name="orders"),
]
