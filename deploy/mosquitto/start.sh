#!/bin/sh
# Mosquitto opens its password and ACL files after dropping root for user mosquitto, and 2.0.16+ warns about
# (later versions refuse) files others may read. The host's files are the operator's, mode 0600: copy them
# where only the broker reads them, on every start, so `docker compose restart mosquitto` picks up new ones.
set -eu
mkdir -p /mosquitto/auth
cp /mosquitto/secrets/passwd /mosquitto/secrets/acl /mosquitto/auth/
chown -R mosquitto:mosquitto /mosquitto/auth /mosquitto/data
chmod 0700 /mosquitto/auth
chmod 0600 /mosquitto/auth/passwd /mosquitto/auth/acl
exec /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf
