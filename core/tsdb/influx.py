"""InfluxDB adapters: line protocol in, InfluxQL (/query, epoch=ms) out.

Schema (docs/data-model.md, "Time-series store"): measurement = station kind, tag ``station_id``, one float field per metric,
timestamp = the device time in milliseconds. A point is measurement + tag set + time, so writing the
same station, metric and time twice keeps one value (the last written) -- the same as the SQLite upsert.

* ``InfluxV1Store`` -- ``influxdb://[user:pass@]host:port/database``: writes ``POST /write``, reads
  ``/query``. Serves InfluxDB 1.x and 3.x natively and 2.x through its v1-compatible API.
* ``Influx2Store`` -- ``influxdb2://host:port/bucket?org=ORG`` plus a token: writes through
  influxdb-client's synchronous write API, reads through the v1-compatible ``/query`` with
  ``db=bucket`` (2.7+ maps every bucket to a virtual database/retention policy).

Both URLs accept ``?tls=true`` for HTTPS and ``?timeout=SECONDS``; ``influxdb://…?create=false`` skips
CREATE DATABASE (it is tried once, and a refusal is tolerated).

Reads query each kind (measurement) with its own statement, all sent in one request; servers that only
run one statement per request (InfluxDB 3's v1 API) are detected and then served one statement per
request. A statement that fails with "... not found" (database, measurement or table not created yet)
reads as empty, like a fresh SQLite store.
"""

from __future__ import annotations

import gzip
import logging
import math
import threading
from datetime import datetime
from typing import Any, Iterable, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from core.domain import KINDS, METRICS, Reading
from core.timeutil import from_ms, to_ms
from core.tsdb.port import AGGS, STATS, Agg, BucketStats, StatName, StoreUnavailable

log = logging.getLogger(__name__)

TAG = "station_id"
# influxdb-client recommends about 5,000 lines per request (docs/domain.md).
WRITE_BATCH_LINES = 5000
_GZIP_MIN_BYTES = 1024
_TRUE = ("1", "true", "yes", "on")
# 408 Request Timeout and 429 Too Many Requests are transient like 5xx: the caller keeps its data.
_TRANSIENT_4XX = (408, 429)


# ---------------------------------------------------------------------------------------------------------
# Line protocol and InfluxQL quoting
# ---------------------------------------------------------------------------------------------------------

def _check_text(kind: str, value: str) -> str:
    if not value:
        raise ValueError(f"empty {kind} cannot be written to InfluxDB")
    if "\n" in value or "\r" in value:
        raise ValueError(f"{kind} must not contain a line break: {value!r}")
    if value.endswith("\\"):
        # A trailing backslash would escape the separator that follows it.
        raise ValueError(f"{kind} must not end with a backslash: {value!r}")
    return value


def lp_measurement(name: str) -> str:
    return _check_text("measurement", name).replace(",", "\\,").replace(" ", "\\ ")


def lp_key(name: str) -> str:
    """Escape a tag key, tag value or field key."""
    return _check_text("tag or field", name).replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def lp_float(value: float) -> str:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"InfluxDB cannot store a non-finite value: {v}")
    return repr(v)


def to_lines(readings: Iterable[Reading]) -> list[str]:
    """One line per (kind, station, time) holding all its metrics; a metric repeated in the batch: last wins."""
    points: dict[tuple[str, str, int], dict[str, float]] = {}
    for r in readings:
        points.setdefault((r.kind, r.station_id, to_ms(r.ts)), {})[r.metric] = float(r.value)
    return [
        f"{lp_measurement(kind)},{TAG}={lp_key(sid)} "
        + ",".join(f"{lp_key(m)}={lp_float(v)}" for m, v in fields.items())
        + f" {ts}"
        for (kind, sid, ts), fields in points.items()
    ]


def _escape_ql(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def q_ident(name: str) -> str:
    """A double-quoted InfluxQL identifier (measurement, tag, field, database)."""
    return '"' + _escape_ql(name).replace('"', '\\"') + '"'


def q_str(value: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + _escape_ql(value).replace("'", "\\'") + "'"


def _time_range(start: datetime, end: datetime) -> str:
    return f"time >= {to_ms(start)}ms AND time < {to_ms(end)}ms"


def _series(result: dict[str, Any]) -> list[dict[str, Any]]:
    return result.get("series") or []


def _rows(series: dict[str, Any]) -> Iterable[dict[str, Any]]:
    cols = series["columns"]
    for values in series.get("values") or []:
        yield dict(zip(cols, values))


# ---------------------------------------------------------------------------------------------------------
# The shared InfluxQL reader
# ---------------------------------------------------------------------------------------------------------

class _InfluxQLStore:
    """Everything but writing: HTTP plumbing, /query, and the port's read methods on InfluxQL."""

    #: description for error messages
    label = "InfluxDB"

    def __init__(self, base_url: str, database: str, *, headers: dict[str, str] | None = None,
                 auth: tuple[str, str] | None = None, timeout: float = 10.0) -> None:
        if not database:
            raise ValueError("the InfluxDB URL must name a database/bucket: influxdb://host:port/NAME")
        self.base_url = base_url.rstrip("/")
        self.database = database
        self.timeout = timeout
        # One persistent client per store: connection pooling, thread-safe.
        self._http = httpx.Client(base_url=self.base_url, headers=headers or {}, auth=auth,
                                  timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
        self._multi_statement = True
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never print credentials
        return f"{type(self).__name__}({self.base_url}, db={self.database!r})"

    # -- HTTP ---------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:  # connect errors, timeouts, broken connections
            raise StoreUnavailable(f"{self.label} at {self.base_url} unreachable: {type(exc).__name__}: {exc}") \
                from exc
        if resp.status_code >= 500 or resp.status_code in _TRANSIENT_4XX:
            raise StoreUnavailable(f"{self.label} at {self.base_url} answered {resp.status_code} on {path}: "
                                   f"{self._error_text(resp)}")
        if resp.status_code >= 400:
            raise ValueError(f"{self.label} rejected {method} {path} ({resp.status_code}): {self._error_text(resp)}")
        return resp

    @staticmethod
    def _error_text(resp: httpx.Response) -> str:
        try:
            body = resp.json()
            if isinstance(body, dict):
                msg = body.get("error") or body.get("message")
                if msg:
                    return str(msg)[:500]
        except ValueError:
            pass
        return resp.text[:500] or resp.reason_phrase

    def _post_query(self, q: str) -> list[dict[str, Any]]:
        resp = self._request("POST", "/query", params={"db": self.database, "epoch": "ms"}, data={"q": q})
        try:
            return list(resp.json().get("results") or [])
        except ValueError as exc:
            raise StoreUnavailable(f"{self.label} sent a response that is not JSON: {resp.text[:200]!r}") from exc

    def _ql(self, statements: Sequence[str]) -> list[dict[str, Any]]:
        """Run InfluxQL statements and return one result per statement, in order.

        Statement errors raise ValueError, except "... not found", which reads as an empty result.
        """
        if not statements:
            return []
        results: list[dict[str, Any]] | None = None
        if self._multi_statement and len(statements) > 1:
            try:
                results = self._post_query(";\n".join(statements))
            except ValueError:
                results = None  # a bad statement, or no multi-statement support: the single runs tell
            if results is not None and len(results) != len(statements):
                results = None
        if results is None:
            results = []
            for st in statements:
                res = self._post_query(st)
                results.append(res[0] if res else {})
            if self._multi_statement and len(statements) > 1:
                # One by one works where all at once did not (e.g. InfluxDB 3's v1 API): keep to that.
                log.info("%s runs one InfluxQL statement per request; sending them separately", self.label)
                self._multi_statement = False
        for st, res in zip(statements, results):
            err = res.get("error")
            if err:
                if "not found" in err:
                    res.clear()
                    continue
                raise ValueError(f"{self.label} query failed: {err} (in: {st[:300]})")
            for s in _series(res):
                if s.get("partial"):
                    raise ValueError(f"{self.label} truncated the result (max-row-limit); narrow the query: {st[:300]}")
        return results

    # -- the port's reads -----------------------------------------------------------------------------------

    def _ensure_database(self) -> None:
        """Hook for adapters that create their database on first use."""

    def latest(self, kind: str | None = None, station_ids: Sequence[str] | None = None) -> list[Reading]:
        if station_ids is not None and not station_ids:
            return []
        self._ensure_database()
        kinds = [kind] if kind else list(KINDS)
        where = ""
        if station_ids is not None:
            where = " WHERE " + " OR ".join(f"{q_ident(TAG)} = {q_str(s)}" for s in dict.fromkeys(station_ids))
        # last() of a single field reports that point's time; last(*) over several fields reports time 0.
        plan = [(k, m) for k in kinds for m in METRICS.get(k, {})]
        statements = [f"SELECT last({q_ident(m)}) FROM {q_ident(k)}{where} GROUP BY {q_ident(TAG)}"
                      for k, m in plan]
        out: list[Reading] = []
        for (k, m), res in zip(plan, self._ql(statements)):
            for s in _series(res):
                sid = (s.get("tags") or {}).get(TAG)
                if not sid:
                    continue
                for row in _rows(s):
                    if row.get("last") is not None:
                        out.append(Reading(sid, k, m, from_ms(row["time"]), float(row["last"])))
        out.sort(key=lambda r: (r.station_id, r.metric))
        return out

    def query(self, station_id: str, metric: str | None, start: datetime, end: datetime,
              limit: int = 10000) -> list[Reading]:
        if limit == 0:
            return []
        self._ensure_database()
        fields = q_ident(metric) if metric else "*::field"
        # LIMIT counts rows (points), each holding at least one metric: the first `limit` rows of every
        # kind are enough to find the first `limit` readings overall.
        tail = f" LIMIT {int(limit)}" if limit > 0 else ""
        statements = [f"SELECT {fields} FROM {q_ident(k)} WHERE {q_ident(TAG)} = {q_str(station_id)} "
                      f"AND {_time_range(start, end)} ORDER BY time ASC{tail}" for k in KINDS]
        out: list[Reading] = []
        for k, res in zip(KINDS, self._ql(statements)):
            for s in _series(res):
                for row in _rows(s):
                    ts = from_ms(row.pop("time"))
                    row.pop(TAG, None)
                    out.extend(Reading(station_id, k, m, ts, float(v)) for m, v in row.items() if v is not None)
        out.sort(key=lambda r: (r.ts, r.metric))
        return out[:limit] if limit > 0 else out

    def aggregate(self, station_id: str, metric: str, start: datetime, end: datetime,
                  every_s: int, agg: Agg) -> list[tuple[datetime, float]]:
        if agg not in AGGS:
            raise ValueError(f"agg must be one of {AGGS}")
        every_ms = int(every_s * 1000)
        if every_ms <= 0:
            raise ValueError("every_s must be positive")
        self._ensure_database()
        f = q_ident(metric)
        # mean = sum / count, exactly as InfluxDB's mean() computes it; asking for both lets buckets of a
        # station found under two kinds be merged exactly.
        select = f"sum({f}) AS a, count({f}) AS n" if agg == "mean" else f"{agg}({f}) AS a"
        statements = [f"SELECT {select} FROM {q_ident(k)} WHERE {q_ident(TAG)} = {q_str(station_id)} "
                      f"AND {_time_range(start, end)} GROUP BY time({every_ms}ms) fill(none)" for k in KINDS]
        buckets: dict[int, list[float]] = {}
        for res in self._ql(statements):
            for s in _series(res):
                for row in _rows(s):
                    if row.get("a") is None:
                        continue
                    a, n = float(row["a"]), float(row.get("n") or 0)
                    prev = buckets.get(row["time"])
                    if prev is None:
                        buckets[row["time"]] = [a, n]
                    elif agg in ("sum", "count", "mean"):
                        prev[0] += a
                        prev[1] += n
                    else:
                        prev[0] = min(prev[0], a) if agg == "min" else max(prev[0], a)
        return [(from_ms(t), a / n if agg == "mean" else a) for t, (a, n) in sorted(buckets.items())]

    def bucket_stats(self, station_ids: Sequence[str], metrics: Sequence[str], start: datetime, end: datetime,
                     every_s: int, offset_s: int = 0, stats: Sequence[StatName] = STATS,
                     ) -> dict[tuple[str, str], list[tuple[datetime, BucketStats]]]:
        every_ms = int(every_s * 1000)
        if every_ms <= 0:
            raise ValueError("every_s must be positive")
        ids, mets = list(dict.fromkeys(station_ids)), list(dict.fromkeys(metrics))
        wanted = [a for a in STATS if a in stats]
        if not ids or not mets or not wanted:
            return {}
        self._ensure_database()
        off_ms = int(offset_s * 1000) % every_ms
        who = " OR ".join(f"{q_ident(TAG)} = {q_str(s)}" for s in ids)
        # One statement per (kind, metric, aggregate), all in one request: InfluxDB 1.x makes one pass per aggregate
        # either way, and several aggregates in one SELECT cost it more than their sum.
        plan = [(k, m, a) for k in KINDS for m in mets if m in METRICS.get(k, {}) for a in wanted]
        statements = [f"SELECT {a}({q_ident(m)}) AS v FROM {q_ident(k)} WHERE ({who}) AND {_time_range(start, end)} "
                      f"GROUP BY time({every_ms}ms, {off_ms}ms), {q_ident(TAG)} fill(none)" for k, m, a in plan]
        slot = {a: i for i, a in enumerate(STATS)}
        merged: dict[tuple[str, str], dict[int, list[float | None]]] = {}
        seen_kind: dict[tuple[str, str], str] = {}
        for (k, m, a), res in zip(plan, self._ql(statements)):
            for s in _series(res):
                sid = (s.get("tags") or {}).get(TAG)
                if not sid:
                    continue
                # A station found under two kinds (a misconfigured device) keeps the first kind's figures.
                if seen_kind.setdefault((sid, m), k) != k:
                    continue
                per = merged.setdefault((sid, m), {})
                for t, v in s.get("values") or []:
                    if v is None:
                        continue
                    row = per.get(t)
                    if row is None:
                        row = per[t] = [None] * len(STATS)
                    row[slot[a]] = v
        times: dict[int, datetime] = {}  # stations share their buckets: one datetime per bucket

        def at(ms: int) -> datetime:
            t = times.get(ms)
            if t is None:
                t = times[ms] = from_ms(ms)
            return t

        out: dict[tuple[str, str], list[tuple[datetime, BucketStats]]] = {}
        for key, per in sorted(merged.items()):
            rows = []
            for t, (n, total, lo, hi, mean) in sorted(per.items()):
                if n == 0:
                    continue
                rows.append((at(t), BucketStats(None if n is None else int(n), total, lo, hi, mean)))
            if rows:
                out[key] = rows
        return out

    def counts_by_kind(self) -> dict[str, int]:
        self._ensure_database()
        statements = [f"SELECT count(*) FROM {q_ident(k)}" for k in KINDS]
        out: dict[str, int] = {}
        for k, res in zip(KINDS, self._ql(statements)):
            n = sum(int(v) for s in _series(res) for row in _rows(s)
                    for c, v in row.items() if c != "time" and v is not None)
            if n:
                out[k] = n
        return out

    def ping(self) -> bool:
        try:
            return self._http.get("/ping").status_code in (200, 204)
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._http.close()


# ---------------------------------------------------------------------------------------------------------
# URL parsing
# ---------------------------------------------------------------------------------------------------------

def _parse(url: str, scheme: str) -> tuple[str, str, dict[str, str], str | None, str | None, float]:
    parts = urlsplit(url)
    if parts.scheme != scheme or not parts.hostname:
        raise ValueError(f"expected {scheme}://host:port/NAME, got {parts.scheme}://…")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    tls = query.get("tls", query.get("ssl", "")).lower() in _TRUE
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    base = f"{'https' if tls else 'http'}://{host}:{parts.port or 8086}"
    name = unquote(parts.path.strip("/"))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    timeout = float(query.get("timeout", 10.0))
    return base, name, query, user, password, timeout


# ---------------------------------------------------------------------------------------------------------
# InfluxDB 1.x / 3.x (and 2.x through the v1 API)
# ---------------------------------------------------------------------------------------------------------

class InfluxV1Store(_InfluxQLStore):
    """``influxdb://[user:pass@]host:port/database``; writes ``POST /write?precision=ms``.

    Credentials: user and password from the URL (HTTP basic auth), or else ``token`` as
    ``Authorization: Token …`` (InfluxDB 2.x v1 API, InfluxDB 3).
    """

    label = "InfluxDB"

    def __init__(self, base_url: str, database: str, *, username: str | None = None, password: str | None = None,
                 token: str | None = None, timeout: float = 10.0, create_database: bool = True) -> None:
        headers = {"Authorization": f"Token {token}"} if token and not username else None
        auth = (username, password or "") if username else None
        super().__init__(base_url, database, headers=headers, auth=auth, timeout=timeout)
        self._db_ready = not create_database

    @classmethod
    def from_url(cls, url: str, token: str | None = None) -> "InfluxV1Store":
        base, name, query, user, password, timeout = _parse(url, "influxdb")
        create = query.get("create", "true").lower() in _TRUE
        return cls(base, name, username=user, password=password, token=token, timeout=timeout,
                   create_database=create)

    def _ensure_database(self) -> None:
        """CREATE DATABASE (idempotent) once; a refusal (no admin right, 2.x/3.x) is logged and tolerated."""
        if self._db_ready:
            return
        with self._lock:
            if self._db_ready:
                return
            try:
                resp = self._request("POST", "/query", data={"q": f"CREATE DATABASE {q_ident(self.database)}"})
                errors = [r["error"] for r in resp.json().get("results") or [] if r.get("error")]
                if errors:
                    log.warning("could not create InfluxDB database %r (continuing): %s", self.database, errors[0])
            except ValueError as exc:  # 4xx: not allowed or not supported here; the database may well exist
                log.warning("could not create InfluxDB database %r (continuing): %s", self.database, exc)
            self._db_ready = True  # StoreUnavailable propagates and leaves this for the next call

    def write(self, readings: Sequence[Reading]) -> None:
        if not readings:
            return
        lines = to_lines(readings)
        self._ensure_database()
        for i in range(0, len(lines), WRITE_BATCH_LINES):
            body = ("\n".join(lines[i:i + WRITE_BATCH_LINES]) + "\n").encode()
            headers = {"Content-Type": "text/plain; charset=utf-8"}
            if len(body) >= _GZIP_MIN_BYTES:
                body = gzip.compress(body, compresslevel=5)
                headers["Content-Encoding"] = "gzip"
            self._request("POST", "/write", params={"db": self.database, "precision": "ms"}, content=body,
                          headers=headers)


# ---------------------------------------------------------------------------------------------------------
# InfluxDB 2.x / Cloud via influxdb-client
# ---------------------------------------------------------------------------------------------------------

class Influx2Store(_InfluxQLStore):
    """``influxdb2://host:port/bucket?org=ORG`` with an API token.

    Writes go through ONE influxdb-client and ONE synchronous write API per store (docs/domain.md: one per
    process, closed on exit); reads through the v1-compatible ``/query`` (``db`` = bucket).
    """

    label = "InfluxDB 2"

    def __init__(self, base_url: str, bucket: str, org: str, token: str, *, timeout: float = 10.0) -> None:
        if not org:
            raise ValueError("influxdb2:// URLs need the organisation: influxdb2://host:port/BUCKET?org=ORG")
        if not token:
            raise ValueError("InfluxDB 2 needs an API token: set SMARTWATER_INFLUX_TOKEN")
        super().__init__(base_url, bucket, headers={"Authorization": f"Token {token}"}, timeout=timeout)
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.bucket, self.org = bucket, org
        self._client = InfluxDBClient(url=self.base_url, token=token, org=org, timeout=int(timeout * 1000),
                                      enable_gzip=True)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    @classmethod
    def from_url(cls, url: str, token: str | None = None) -> "Influx2Store":
        base, name, query, _user, _password, timeout = _parse(url, "influxdb2")
        return cls(base, name, query.get("org", ""), token or "", timeout=timeout)

    def write(self, readings: Sequence[Reading]) -> None:
        if not readings:
            return
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        lines = to_lines(readings)
        for i in range(0, len(lines), WRITE_BATCH_LINES):
            try:
                self._write_api.write(bucket=self.bucket, org=self.org, record=lines[i:i + WRITE_BATCH_LINES],
                                      write_precision=WritePrecision.MS)
            except ApiException as exc:
                status = exc.status or 0
                text = _api_error_text(exc)
                if status >= 500 or status in _TRANSIENT_4XX or status == 0:
                    raise StoreUnavailable(f"{self.label} at {self.base_url} answered {status} on write: {text}") \
                        from exc
                raise ValueError(f"{self.label} rejected the write ({status}): {text}") from exc
            except (Urllib3Error, OSError) as exc:
                raise StoreUnavailable(f"{self.label} at {self.base_url} unreachable: "
                                       f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        try:
            self._write_api.close()
            self._client.close()
        finally:
            super().close()


def _api_error_text(exc: Any) -> str:
    import json

    body = getattr(exc, "body", None)
    if body:
        try:
            msg = json.loads(body).get("message")
            if msg:
                return str(msg)[:500]
        except (ValueError, AttributeError):
            return str(body)[:500]
    return str(getattr(exc, "reason", "") or exc)[:500]
