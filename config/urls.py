from django.contrib import admin
from django.urls import include, path

from ops.middleware import admin_login_ratelimited

admin.site.site_header = "Prediction markets"
admin.site.site_title = "Prediction markets admin"
admin.site.index_title = "Back office"
# "View site" opens the staff dashboard (there is no public site at /).
admin.site.site_url = "/dashboard/"
# Brute force against staff passwords: 10 POSTs a minute per address (settings.ADMIN_LOGIN_RATE).
# (Replacing the bound method on this one site instance is the point; mypy refuses any method
# assignment.)
admin.site.login = admin_login_ratelimited(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    path("", include("ops.urls")),
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
]
