from django.urls import path

from monitoring.observability import views

urlpatterns = [
    path("health", views.health, name="health"),
    path("health/live", views.health_live, name="health-live"),
    path("health/db", views.health_db, name="health-db"),
    path("metrics", views.metrics, name="metrics"),
]
