from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "bookshop.shop"
    label = "shop"
