"""Prometheus metrics of the gateway (served by core.health on SMARTWATER_GATEWAY_METRICS_PORT)."""

from prometheus_client import Counter, Gauge

FRAMES = Counter("smartwater_gateway_frames_total", "Frames received, by protocol and outcome",
                 ["protocol", "outcome"])
READINGS = Counter("smartwater_gateway_readings_total", "Values published as readings", ["protocol"])
UNMAPPED = Counter("smartwater_gateway_unmapped_values_total",
                   "Values without a metric or a station of the device, by device and code",
                   ["protocol", "device", "code"])
WITHHELD = Counter("smartwater_gateway_flagged_values_total",
                   "HJ 212 values flagged other than N (calibration, maintenance...), kept out of the readings",
                   ["protocol", "flag"])
CLOCK_DRIFT = Counter("smartwater_gateway_clock_drift_frames_total",
                      "Frames whose device clock was further from ours than the allowed drift", ["protocol"])
CONNECTIONS = Gauge("smartwater_gateway_connections", "Device connections open", ["protocol"])
REFUSED_CONNECTIONS = Counter("smartwater_gateway_refused_connections_total",
                              "Connections closed at once: too many open", ["protocol"])
BATTERY = Gauge("smartwater_gateway_device_battery_volts", "Supply voltage a device last reported",
                ["protocol", "device"])
DEAD_LETTERS_DROPPED = Counter("smartwater_gateway_dead_letters_dropped_total",
                               "Dead letters not stored because the registry writer fell behind")
