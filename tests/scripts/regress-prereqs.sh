#!/usr/bin/env bash
# Root, Debian: what building PostgreSQL's regression database needs (testkit::regress).
#  - deb-src entries mirroring Debian's own `deb` entries, so `apt-get source postgresql-15`
#    finds the sources (other vendors' repositories rarely carry sources: left alone);
#  - postgresql-server-dev-15 (server headers and pgxs, to build regress.so), dpkg-dev
#    (dpkg-source unpacks the source package), make and gcc.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

changed=0
if ! grep -rqsE '^[[:space:]]*(deb-src[[:space:]]|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  # deb822 stanzas (Debian 12's default): each `Types: deb` stanza of a debian.org archive again
  # as `Types: deb-src`.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk 'BEGIN { RS = ""; ORS = "\n\n" }
         /(^|\n)Types:[ \t]*deb[ \t]*(\n|$)/ && /URIs:[^\n]*debian\.org/ {
           sub(/Types:[ \t]*deb/, "Types: deb-src"); print }' "$f"
  done > /etc/apt/sources.list.d/cbtools-debsrc.sources
  # one-line entries
  if [ -e /etc/apt/sources.list ]; then
    sed -n 's/^[[:space:]]*deb[[:space:]]\(.*debian\.org.*\)$/deb-src \1/p' /etc/apt/sources.list \
      > /etc/apt/sources.list.d/cbtools-debsrc.list
  fi
  changed=1
fi

need=()
[ -e /usr/include/postgresql/15/server/postgres.h ] || need+=(postgresql-server-dev-15)
command -v dpkg-source >/dev/null || need+=(dpkg-dev)
command -v make >/dev/null || need+=(make)
command -v gcc >/dev/null || need+=(gcc)

if [ "$changed" = 1 ] || [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
