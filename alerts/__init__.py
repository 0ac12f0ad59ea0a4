"""Alert stage: rules → state → notify."""

from alerts.service import AlertService

__all__ = ["AlertService"]
