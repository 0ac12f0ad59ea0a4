"""The naive baseline: how many tutorials write MQTT → database. Not used by the product.

A paho-mqtt 2 client (MQTT 3.1.1, persistent session, QoS 1, automatic acknowledgement after
``on_message`` returns) whose ``on_message`` does ``json.loads`` and writes ONE point per message:

* ``sqlite:///path``: one ``INSERT`` and one ``COMMIT`` per message into the SQLite store's
  ``readings`` table (same file and schema as ``core.tsdb.sqlite``, WAL with ``synchronous=NORMAL``
  like the store, so durability costs are the same; it does not maintain the ``latest`` table).
* ``influxdb://host:port/database``: one ``POST /write`` per message (line protocol, same schema
  as ``core.tsdb.influx``: measurement = kind, tag ``station_id``, field = metric, ms precision), on a
  keep-alive connection (``httpx.Client``).

No validation, no batching, no dead letters. Only the single-reading form (``{"ts", "values"}``) is
written; each value in ``values`` becomes its own INSERT/POST.

``python -m benchmarks.naive_consumer --mqtt-url mqtt://127.0.0.1:1883 --client-id ID --store URL``
Stops on SIGTERM/SIGINT (disconnects; the session stays at the broker).
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import threading
from datetime import datetime
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def _ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1000)


class SQLiteWriter:
    def __init__(self, path: str) -> None:
        # paho calls on_message from its network thread, not the thread that opened the connection.
        self.conn = sqlite3.connect(path, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def write(self, station_id: str, kind: str, metric: str, ts_ms: int, value: float) -> None:
        self.conn.execute("INSERT OR REPLACE INTO readings (station_id, metric, ts_ms, kind, value) VALUES (?,?,?,?,?)",
                          (station_id, metric, ts_ms, kind, value))
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


class InfluxWriter:
    def __init__(self, url: str) -> None:
        import httpx

        parts = urlsplit(url)
        self.http = httpx.Client(base_url=f"http://{parts.hostname}:{parts.port or 8086}", timeout=10)
        self.params = {"db": parts.path.strip("/"), "precision": "ms"}

    def write(self, station_id: str, kind: str, metric: str, ts_ms: int, value: float) -> None:
        line = f"{kind},station_id={station_id} {metric}={float(value)!r} {ts_ms}"
        resp = self.http.post("/write", params=self.params, content=line)
        resp.raise_for_status()

    def close(self) -> None:
        self.http.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mqtt-url", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--store", required=True, help="sqlite:///path or influxdb://host:port/database")
    ap.add_argument("--topic", default="water/#")
    args = ap.parse_args(argv)

    writer = SQLiteWriter(args.store.removeprefix("sqlite:///")) if args.store.startswith("sqlite:") \
        else InfluxWriter(args.store)

    def on_connect(client, _ud, _flags, reason, _props):
        if not reason.is_failure:
            client.subscribe(args.topic, qos=1)

    def on_message(_client, _ud, msg):
        _, kind, station_id = msg.topic.split("/", 2)
        doc = json.loads(msg.payload)
        ts_ms = _ms(doc["ts"])
        for metric, value in doc["values"].items():
            writer.write(station_id, kind, metric, ts_ms, value)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id, clean_session=False,
                         protocol=mqtt.MQTTv311)
    client.on_connect = on_connect
    client.on_message = on_message
    parts = urlsplit(args.mqtt_url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=30)
    client.loop_start()
    stop.wait()
    client.disconnect()
    client.loop_stop()
    writer.close()


if __name__ == "__main__":
    main()
