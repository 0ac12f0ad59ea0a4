"""Overdue issues are notified once per missed deadline: a report on MQTT and to the alert webhooks.

The alert stage runs ``notify_overdue`` every ``issue_overdue_check_s``. What was notified is recorded in the
issue's history (event ``overdue_notified`` with the deadline), in the registry rather than in memory, so a
restart does not notify again; a failed review sets a new deadline, and missing that one is notified too.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

from core import topics
from core.logs import kv
from core.patrols.models import Issue
from core.patrols.repo import PatrolRepo

log = logging.getLogger("core.patrols")

OVERDUE_TOPIC = topics.OVERDUE_ISSUES
OVERDUE_REPORT_EVENT = "issue_overdue"


class ReportPublisher(Protocol):
    def publish_report(self, event: str, topic: str, payload: dict[str, Any], key: str) -> Any: ...


def overdue_payload(issue: Issue, at: datetime) -> dict[str, Any]:
    assert issue.deadline is not None  # overdue means assigned with a deadline
    return {"event": OVERDUE_REPORT_EVENT, "issue_id": issue.id, "category": issue.category.value,
            "town": issue.town, "segment_id": issue.segment_id, "found_by": issue.found_by,
            "assignee_kind": issue.assignee_kind.value if issue.assignee_kind else None, "assignee": issue.assignee,
            "deadline": issue.deadline.isoformat(), "overdue_h": round((at - issue.deadline).total_seconds() / 3600, 1),
            "reopened": issue.reopened, "lat": issue.lat, "lon": issue.lon}


def notify_overdue(repo: PatrolRepo, publisher: ReportPublisher, at: datetime | None = None) -> list[int]:
    """Notify every overdue issue not notified yet for its current deadline (at ``at``, default the repository's
    clock); the ids notified."""
    at = at or repo.clock.now()
    done: list[int] = []
    for issue in repo.overdue_to_notify(at):
        assert issue.id is not None and issue.deadline is not None
        publisher.publish_report(OVERDUE_REPORT_EVENT, OVERDUE_TOPIC, overdue_payload(issue, at),
                                 key=f"{issue.id}-{int(issue.deadline.timestamp())}")
        repo.record_overdue_notified(issue, at, by="alerts")
        done.append(issue.id)
    if done:
        log.info("overdue issues notified", extra=kv(issues=done))
    return done
