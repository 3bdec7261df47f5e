#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager and etcd from their published Go modules.
# Binaries are cached outside git; a warm run does nothing but check them.
# Usage: sandbox/build.sh            (prints the bin dir on the last line)
set -euo pipefail

KVER=${SIDECARHUB_K8S_VERSION:-1.37.2}
EVER=${SIDECARHUB_ETCD_VERSION:-v3.6.16}
SVER=v0.${KVER#1.}
CACHE=${SIDECARHUB_K8S_CACHE:-$HOME/.cache/sidecarhub/k8s}
OUT=$CACHE/v$KVER-etcd-$EVER/bin
HERE=$(cd "$(dirname "$0")" && pwd)
START=$(date +%s)

log() { echo "[sandbox/build] $*" >&2; }

if [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/kube-controller-manager" ] && [ -x "$OUT/kubectl" ] && [ -x "$OUT/etcd" ]; then
  log "cached in $OUT (warm run: $(( $(date +%s) - START ))s)"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { log "ERROR: the go command is missing"; exit 1; }
mkdir -p "$OUT"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

build_kube() {
  local w=$CACHE/build-kube-$KVER
  rm -rf "$w"; mkdir -p "$w"; cp "$HERE/gomod/kube/go.mod" "$w/go.mod"
  [ -f "$HERE/gomod/kube/go.sum" ] && cp "$HERE/gomod/kube/go.sum" "$w/go.sum"
  cd "$w"
  local minor; minor=$(echo "$KVER" | cut -d. -f2)
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$KVER -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  go mod download
  for prog in kube-apiserver kube-controller-manager kubectl; do
    if [ ! -x "$OUT/$prog" ]; then
      log "building $prog v$KVER"
      go build -trimpath -buildvcs=false -ldflags "$ld" -o "$OUT/$prog.tmp" "k8s.io/kubernetes/cmd/$prog"
      mv "$OUT/$prog.tmp" "$OUT/$prog"
    fi
  done
}

build_etcd() {
  local w=$CACHE/build-etcd-$EVER
  rm -rf "$w"; mkdir -p "$w"; cp "$HERE/gomod/etcd/go.mod" "$w/go.mod"
  [ -f "$HERE/gomod/etcd/go.sum" ] && cp "$HERE/gomod/etcd/go.sum" "$w/go.sum"
  cd "$w"
  go mod download
  log "building etcd $EVER"
  go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$OUT/etcd.tmp" "$OUT/etcd"
}

[ -x "$OUT/etcd" ] || build_etcd
build_kube
"$OUT/kube-apiserver" --version >&2
"$OUT/etcd" --version | head -1 >&2
log "built in $OUT (cold run: $(( $(date +%s) - START ))s)"
echo "$OUT"
