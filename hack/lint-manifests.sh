#!/usr/bin/env bash
# Checks what users `kubectl apply`: crds/ and manifests/, both as plain files (`apply -f`) and as
# kustomize renders them (`apply -k`). Needs go, node and kubectl; no network but the Go module
# proxy, and that only the first time (tools and the Kubernetes OpenAPI document are cached).
#
# 1. kubeconform, strict: every object against the JSON schema of its kind; unknown fields and
#    duplicate keys are errors. The schemas are generated offline by hack/manifest-schemas.ts from
#    the same Kubernetes release the test control plane runs, plus crds/. What a schema cannot
#    say (the CRD's CEL rules, admission) the install test checks with a server-side dry run.
# 2. kube-score: workload best practices (probes, resources, security context, PDB, anti-affinity,
#    NetworkPolicy, ...), configured below.
#
# kube-linter was the first choice, but its module path (golang.stackrox.io/kube-linter) is not
# served by the Go module proxy this project can reach; kube-score is on github.com and is.
#
# Usage: hack/lint-manifests.sh   (or npm run lint:manifests)
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECONFORM_MODULE=github.com/yannh/kubeconform/cmd/kubeconform
KUBECONFORM_VERSION=v0.8.0
KUBE_SCORE_MODULE=github.com/zegl/kube-score/cmd/kube-score
KUBE_SCORE_VERSION=v1.20.0

# kube-score settings. Every check that applies runs; these are the exceptions, each with its why.
KUBE_SCORE_ARGS=(
  --kubernetes-version v1.34
  --exit-one-on-warning
  --color never
  # Optional checks worth having: a seccomp profile on every pod, container ports named and unique.
  --enable-optional-test container-seccomp-profile
  --enable-optional-test container-ports-check
  # No CPU limit, on purpose: key generation comes in bursts (a new root, a rotation, a namespace
  # full of ServiceAccounts) and a CFS quota throttles exactly those; the CPU request already
  # guarantees the controller its share. (The memory limit is set.)
  --ignore-container-cpu-limit
  # imagePullPolicy Always would make every restart of the CA depend on the registry being
  # reachable; the image is pinned (by tag here, by digest in a release), so IfNotPresent pulls
  # exactly the same bytes.
  --ignore-test container-image-pull-policy
  # Egress stays open (manifests/33-networkpolicy.yaml says why): the API server's address and
  # port differ from cluster to cluster, and cutting the CA off from it stops the CA.
  --ignore-test pod-networkpolicy
)

for command in go node kubectl; do
  command -v "$command" >/dev/null || { echo "lint-manifests: $command is needed and not on PATH" >&2; exit 1; }
done

cache="${ALCAZAR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}}/alcazar"

# Installs module@version with `go install` into its own cache directory, once; prints the binary.
tool() {
  local name=$1 module=$2 version=$3
  local dir="$cache/tools/$name-$version"
  if [[ ! -x "$dir/$name" ]]; then
    echo "installing $name $version (go install, once)" >&2
    rm -rf "$dir.partial"
    mkdir -p "$dir.partial"
    GOBIN="$dir.partial" CGO_ENABLED=0 go install "$module@$version" >&2
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
  fi
  echo "$dir/$name"
}

kubeconform=$(tool kubeconform "$KUBECONFORM_MODULE" "$KUBECONFORM_VERSION")
kube_score=$(tool kube-score "$KUBE_SCORE_MODULE" "$KUBE_SCORE_VERSION")
schemas=$(node --import tsx hack/manifest-schemas.ts)

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
kubectl kustomize manifests/ >"$rendered/kustomized.yaml"

echo "== kubeconform $KUBECONFORM_VERSION (strict, schemas: $schemas)"
"$kubeconform" -strict -summary \
  -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
  crds/ manifests/ "$rendered/kustomized.yaml"

echo "== kube-score $KUBE_SCORE_VERSION"
"$kube_score" score "${KUBE_SCORE_ARGS[@]}" "$rendered/kustomized.yaml"
echo "manifests: ok"
