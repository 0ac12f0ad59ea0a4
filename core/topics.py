"""Every MQTT topic the system uses, and the shared-subscription group of the ingest workers.

The tree (docs/architecture.md, "Topics"):

* ``water/{kind}/{station_id}`` — a station's readings (the wire format: core.payload). Devices may write only
  their own (smartwater/devices.py writes that ACL).
* ``water/alerts/{severity}`` — alert notifications from the alert stage; the API streams them to browsers.
* ``water/reports/…`` — reports, retained: the daily rain report, the river-chief issues past their deadline.

Our own notifications sit under the same root as readings so one subscription (``water/#``) sees everything;
``is_reading_topic`` tells the two apart.
"""

from __future__ import annotations

ROOT = "water"
ALERTS_LEVEL, REPORTS_LEVEL = "alerts", "reports"
# The second level of our own notification topics: never a station kind.
OWN_LEVELS = frozenset({ALERTS_LEVEL, REPORTS_LEVEL})

# -- readings ------------------------------------------------------------------------------------------------------
ALL = f"{ROOT}/#"  # readings and notifications: what ingest takes (and dead-letters what is not a reading)
READINGS = f"{ROOT}/+/+"  # what the alert stage evaluates


def reading(kind: str, station_id: str) -> str:
    """The topic a station publishes its readings to."""
    return f"{ROOT}/{kind}/{station_id}"


def readings_of_kind(kind: str) -> str:
    """Every station of one kind (the simulator's ACL)."""
    return f"{ROOT}/{kind}/+"


def is_reading_topic(topic: str) -> bool:
    """Everything under the root but our own notification topics; a malformed one is a dead letter."""
    parts = topic.split("/", 2)
    return not (len(parts) >= 2 and parts[0] == ROOT and parts[1] in OWN_LEVELS)


# -- alerts (published by the alert stage, streamed by the API) -----------------------------------------------------
ALERTS = f"{ROOT}/{ALERTS_LEVEL}/#"


def alert(severity: str) -> str:
    return f"{ROOT}/{ALERTS_LEVEL}/{severity}"


# -- reports (retained) ------------------------------------------------------------------------------------------------
REPORTS = f"{ROOT}/{REPORTS_LEVEL}/#"
DAILY_RAIN_REPORT = f"{ROOT}/{REPORTS_LEVEL}/daily_rain"
OVERDUE_ISSUES = f"{ROOT}/{REPORTS_LEVEL}/issues/overdue"

# -- shared subscriptions ------------------------------------------------------------------------------------------
# The group docker-compose.yml's ingest workers join (SMARTWATER_INGEST_SHARED_GROUP). Broker accounts are written
# for the settings' group; on a machine whose settings name none (the operator's, writing the ACL for compose),
# this one.
DEFAULT_SHARED_GROUP = "ingest"


def shared(group: str, topic: str) -> str:
    """An MQTT 5 shared subscription: the group's members split the topic's messages between them."""
    return f"$share/{group}/{topic}"


def ingest_subscription(group: str | None) -> str:
    """What an ingest worker subscribes to: everything, shared with its group when it has one."""
    return shared(group, ALL) if group else ALL
