#!/bin/bash
# Runs once, right after the image's setup created org, bucket and admin token (DOCKER_INFLUXDB_INIT_*).
# The services read through InfluxQL (/query?db=<bucket>, default retention policy: core/tsdb/influx.py), which
# needs a database/retention-policy mapping. 2.7 derives a virtual one from the bucket name; an explicit one
# survives renaming the bucket and works on every 2.x.
set -euo pipefail
influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${DOCKER_INFLUXDB_INIT_BUCKET}" \
  --rp autogen \
  --default
