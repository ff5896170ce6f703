from django.urls import path

from portal.cards import views

urlpatterns = [
    path("models/<int:version_id>/", views.model_card, name="model_card"),
    path("models/<int:version_id>/plot/<str:kind>.png", views.model_card_plot, name="model_card_plot"),
]
