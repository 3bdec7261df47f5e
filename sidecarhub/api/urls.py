"""The one API router; each app registers its viewsets here (URLs in comments beside them)."""

from rest_framework.routers import DefaultRouter

router = DefaultRouter()
