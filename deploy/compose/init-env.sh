#!/bin/sh
# Writes .env for the compose stack with fresh random passwords, unless it
# already exists. The file is read by `docker compose` and must stay private.
set -eu
cd "$(dirname "$0")"
if [ -e .env ]; then
	echo ".env exists; delete it to generate new passwords" >&2
	exit 0
fi
umask 077
pw() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
cat > .env <<EOT
VIGIL_NATS_PASSWORD=$(pw)
NATS_PASSWORD_BILLING=$(pw)
NATS_PASSWORD_AUTH=$(pw)
NATS_PASSWORD_SIMULATOR=$(pw)
NATS_SYS_PASSWORD=$(pw)
GRAFANA_ADMIN_PASSWORD=$(pw)
EOT
echo "wrote $(pwd)/.env; Grafana login: admin / $(grep GRAFANA_ADMIN_PASSWORD .env | cut -d= -f2)"
