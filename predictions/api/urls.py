from django.urls import path

from predictions.api import fhir, views

urlpatterns = [
    path(
        "patients/<int:pk>/predictions/",
        views.PatientPredictionViewSet.as_view({"get": "list", "post": "create"}),
        name="patient-predictions",
    ),
    path("predictions/", views.LineListViewSet.as_view({"get": "list"}), name="prediction-line-list"),
    path("tracing/", views.TracingViewSet.as_view({"get": "list"}), name="tracing-list"),
    path("predictions/batch/", views.BatchViewSet.as_view({"post": "create"}), name="prediction-batch"),
    path("jobs/", views.JobViewSet.as_view({"get": "list"}), name="job-list"),
    path("jobs/<uuid:job_id>/", views.JobViewSet.as_view({"get": "retrieve"}), name="job-detail"),
    path("models/", views.ModelVersionViewSet.as_view({"get": "list"}), name="model-list"),
    path("models/active/", views.ModelVersionViewSet.as_view({"get": "active"}), name="model-active"),
    path("fhir/RiskAssessment", fhir.RiskAssessmentViewSet.as_view({"get": "list"}), name="fhir-risk-assessment"),
]
