#!/bin/sh
# Writes .env for the compose stack with fresh random passwords. An existing
# .env keeps its passwords and gets only those it lacks (a stack set up
# before a new one was added). The file is read by `docker compose` and must
# stay private.
set -eu
cd "$(dirname "$0")"
umask 077
pw() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
[ -e .env ] && existed=1 || existed=0
touch .env
added=""
for name in VIGIL_NATS_PASSWORD NATS_PASSWORD_BILLING NATS_PASSWORD_AUTH \
	NATS_PASSWORD_SIMULATOR NATS_SYS_PASSWORD NATS_ROUTE_PASSWORD GRAFANA_ADMIN_PASSWORD; do
	if ! grep -q "^$name=" .env; then
		echo "$name=$(pw)" >> .env
		added="$added $name"
	fi
done
if [ "$existed" = 1 ]; then
	echo ".env exists; added:${added:- nothing}. Delete it to generate new passwords" >&2
	exit 0
fi
echo "wrote $(pwd)/.env; Grafana login: admin / $(grep GRAFANA_ADMIN_PASSWORD .env | cut -d= -f2)"
