from django.urls import path

from patients.api import fhir, views

urlpatterns = [
    path("auth/token/", views.TokenViewSet.as_view({"post": "create"}), name="auth-token"),
    path("facilities/", views.FacilityViewSet.as_view({"get": "list"}), name="facility-list"),
    path("facilities/<str:lookup>/", views.FacilityViewSet.as_view({"get": "retrieve"}), name="facility-detail"),
    path("patients/", views.PatientViewSet.as_view({"get": "list", "post": "create"}), name="patient-list"),
    path(
        "patients/<int:pk>/",
        views.PatientViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="patient-detail",
    ),
    path(
        "patients/<int:pk>/observations/",
        views.PatientObservationViewSet.as_view({"get": "list", "post": "create"}),
        name="patient-observations",
    ),
    path("observations/bulk/", views.ObservationBulkViewSet.as_view({"post": "create"}), name="observation-bulk"),
    path("fhir/", fhir.BundleViewSet.as_view({"post": "create"}), name="fhir-bundle"),
]
