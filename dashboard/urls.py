"""Staff dashboard URLs, mounted at /dashboard/ by config/urls.py."""

from django.urls import path

from . import views

app_name = "dashboard"

urlpatterns = [
    path("", views.dashboard, name="index"),
    path("markets/<int:market_id>/", views.market_detail, name="market"),
    path("markets/<int:market_id>/card/", views.market_card, name="market_card"),
    path("markets/<int:market_id>/panel/", views.market_panel, name="market_panel"),
    path("markets/<int:market_id>/chart/", views.market_chart, name="market_chart"),
]
