#!/usr/bin/env bash
# Prints the path of a pinned Go tool, building it with `go install` the first time (cached under
# ~/.cache/alcazar/tools/<name>-<version>/; $ALCAZAR_CACHE_DIR replaces ~/.cache). The tests call this, so a fresh
# machine needs only go and the Go module proxy. Same scheme as hack/lint-manifests.sh.
#
#   helm      helm.sh/helm/v3           the chart in charts/alcazar: lint, template, install, upgrade
#   helm4     helm.sh/helm/v4           the same chart checks with Helm 4 (lint, template)
#   promtool  github.com/prometheus/prometheus   alert rules, rule unit tests, metrics lint
#   kubeconform  the version hack/lint-manifests.sh pins (same cache directory, built once for both)
#
# The Prometheus module is large (its service discovery pulls in every cloud SDK); promtool is built
# without service discovery (tag remove_all_sd), which it does not need here. Neither module uses replace directives, so plain `go install m@v` works.
#
# Usage: hack/go-tool.sh helm|helm4|promtool|kubeconform
set -euo pipefail

HELM_MODULE=helm.sh/helm/v3/cmd/helm
HELM_VERSION=v3.22.0
# The minor version of the k8s.io/client-go helm v3.22.0 requires (v0.37.0).
HELM_K8S_MINOR=37
HELM4_MODULE=helm.sh/helm/v4/cmd/helm
HELM4_VERSION=v4.3.2
PROMTOOL_MODULE=github.com/prometheus/prometheus/cmd/promtool
# Prometheus publishes its Go module as v0.<major><minor>.<patch>: v0.316.0 is Prometheus 3.16.0.
PROMTOOL_VERSION=v0.316.0
PROMTOOL_RELEASE=3.16.0

cd "$(dirname "$0")/.."
command -v go >/dev/null || { echo "go-tool: go is needed and not on PATH" >&2; exit 1; }
cache="${ALCAZAR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}}/alcazar"

tool() {
  local name=$1 module=$2 version=$3 ldflags=${4:-} variant=${5:-}
  local dir="$cache/tools/$name-$version$variant" binary
  binary=$(basename "$module")
  if [[ ! -x "$dir/$binary" ]]; then
    echo "installing $name $version (go install, once)" >&2
    # A per-process partial directory: two test files may ask at once; the loser's rename fails
    # harmlessly because the winner's directory is already there.
    local partial="$dir.partial-$$"
    rm -rf "$partial"
    mkdir -p "$partial"
    GOBIN="$partial" CGO_ENABLED=0 go install -ldflags "$ldflags" "$module@$version" >&2
    if [[ ! -x "$dir/$binary" ]]; then
      rm -rf "$dir"
      mv "$partial" "$dir" 2>/dev/null || true
    fi
    rm -rf "$partial"
  fi
  echo "$dir/$binary"
}

case "${1:-}" in
  helm)
    # Helm's release build sets these with ldflags (its Makefile): its version, and the Kubernetes
    # version `helm template` and `helm lint` assume, from the k8s.io/client-go it builds with
    # (v0.37 → 1.37). Without them that is 1.20, below the chart's kubeVersion.
    k8s="helm.sh/helm/v3/pkg"
    tool helm "$HELM_MODULE" "$HELM_VERSION" "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
      -X $k8s/lint/rules.k8sVersionMajor=1 -X $k8s/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
      -X $k8s/chartutil.k8sVersionMajor=1 -X $k8s/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" "-k8s1.$HELM_K8S_MINOR"
    ;;
  helm4)
    # Helm 4 reads the Kubernetes version it assumes from its build information: no ldflags.
    tool helm4 "$HELM4_MODULE" "$HELM4_VERSION" "-X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION"
    ;;
  promtool)
    # remove_all_sd leaves out every service-discovery plugin (AWS, Azure, GCE, Kubernetes, ...):
    # they are most of the build, and rules, rule tests and metrics lint need none of them.
    GOFLAGS="${GOFLAGS:-} -tags=remove_all_sd" tool promtool "$PROMTOOL_MODULE" "$PROMTOOL_VERSION" \
      "-X github.com/prometheus/common/version.Version=$PROMTOOL_RELEASE" "-nosd"
    ;;
  kubeconform)
    pin() { sed -n "s/^$1=//p" hack/lint-manifests.sh; }
    tool kubeconform "$(pin KUBECONFORM_MODULE)" "$(pin KUBECONFORM_VERSION)"
    ;;
  *)
    echo "usage: hack/go-tool.sh helm|helm4|promtool|kubeconform" >&2
    exit 2
    ;;
esac
