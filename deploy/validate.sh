#!/bin/sh
# Validate deploy/kubernetes.yaml against the real Kubernetes API schema, offline.
#
#   pip install kubernetes-validate==1.37.0   # bundles the OpenAPI schemas of Kubernetes 1.25-1.37
#   deploy/validate.sh [manifest...]
#
# --strict rejects unknown fields, so a misspelt key (`maxSurg`, `readinesProbe`) fails here
# instead of being silently dropped by the API server. Checked against the oldest and the newest
# schema the validator bundles, so the manifest works on every Kubernetes in between.
# The timing budget and the probe flags are checked by tests/deploy.rs, not here.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
[ "$#" -gt 0 ] || set -- "$here/kubernetes.yaml"

if ! command -v kubernetes-validate >/dev/null 2>&1; then
    echo "deploy/validate.sh: kubernetes-validate not found; pip install kubernetes-validate==1.37.0" >&2
    exit 2
fi

for version in 1.25.0 1.37.0; do
    kubernetes-validate --strict --kubernetes-version "$version" "$@"
done
