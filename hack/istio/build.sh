#!/usr/bin/env bash
# Builds Istio's pilot-agent (and, for the benchmark, pilot-discovery) from the istio.io/istio Go
# module and caches the binaries under ~/.cache/alcazar/tools/istio-<version>/. A no-op when the
# cache already holds them, so tests call it unconditionally; a fresh machine needs only go.
#
# The version: Istio tags its releases "1.x.y", which is not semver, so the Go module proxy cannot
# serve them by tag; it serves commits as pseudo-versions. The one pinned here is what the proxy
# answers for istio.io/istio@latest (`go list -m -json istio.io/istio@latest`, go directive 1.26.0),
# so it builds with the go 1.26 on these machines.
#
# Usage: hack/istio/build.sh [pilot-agent|pilot-discovery ...]   prints one binary path per line.
set -euo pipefail

ISTIO_MODULE=istio.io/istio
ISTIO_VERSION=${ALCAZAR_ISTIO_VERSION:-v0.0.0-20260827124520-eed52ebb66ad}

command -v go >/dev/null || { echo "istio build: go is needed and not on PATH" >&2; exit 1; }

cache="${ALCAZAR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}}/alcazar"
dir="$cache/tools/istio-$ISTIO_VERSION"
mkdir -p "$cache/tools"

programs=("$@")
[[ ${#programs[@]} -gt 0 ]] || programs=(pilot-agent)

for program in "${programs[@]}"; do
  case "$program" in
    pilot-agent | pilot-discovery) ;;
    *) echo "istio build: unknown program $program (pilot-agent or pilot-discovery)" >&2; exit 2 ;;
  esac
  if [[ ! -x "$dir/$program" ]]; then
    # One build at a time per program: parallel test files may call this at once.
    exec {lock}>"$cache/tools/.istio-$program.lock"
    flock "$lock"
    if [[ ! -x "$dir/$program" ]]; then
      echo "building $program from $ISTIO_MODULE@$ISTIO_VERSION (go install, once; many minutes cold)" >&2
      staging="$dir.partial-$$"
      rm -rf "$staging"
      mkdir -p "$staging" "$dir"
      GOBIN="$staging" CGO_ENABLED=0 GOFLAGS=-mod=mod \
        go install -trimpath -ldflags='-s -w' "$ISTIO_MODULE/pilot/cmd/$program@$ISTIO_VERSION" >&2
      mv "$staging/$program" "$dir/$program"
      rm -rf "$staging"
    fi
    flock -u "$lock"
    exec {lock}>&-
  fi
  echo "$dir/$program"
done
