#!/bin/sh
# On merge to main: save the node's plan, show it, and apply exactly that plan. apply refuses it
# (exit 1, "stale plan") if the engine changed in between. The saved plan holds the private key:
# it is written 0600 in a job-private directory; apply deletes it once applied, the trap whatever happens.
# Changes that weaken domain security are applied only with DOMSEC_APPROVE_WEAKENING=1.
set -eu
node="$1"
domsec=${DOMSEC:-npx domsec}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
$domsec plan -f shared -f "nodes/$node" --out "$dir/$node.plan"
if [ "${DOMSEC_APPROVE_WEAKENING:-0}" = 1 ]; then
  $domsec apply "$dir/$node.plan" --auto-approve --approve-weakening
else
  $domsec apply "$dir/$node.plan" --auto-approve
fi
