from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Prediction markets"
admin.site.site_title = "Prediction markets admin"
admin.site.index_title = "Back office"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dashboard/", include("markets.urls")),
]
