#!/bin/sh
# On a pull request: validate a node's manifests and plan them against its engine, as JSON for
# review tools and as text in the log. Exit 0: no changes, 2: changes (both fine), 1: an error.
# Needs DOMSEC_SERVER and DOMSEC_TOKEN for the node; DOMSEC names the CLI (default: npx domsec).
set -eu
node="$1"
domsec=${DOMSEC:-npx domsec}
out=${PLAN_DIR:-.}
$domsec validate -f shared -f "nodes/$node"
set +e
$domsec plan -f shared -f "nodes/$node" -o json --detailed-exitcode > "$out/plan-$node.json"
code=$?
set -e
[ "$code" -eq 0 ] || [ "$code" -eq 2 ] || exit "$code"
$domsec plan -f shared -f "nodes/$node"
