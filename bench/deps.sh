#!/usr/bin/env bash
# Installs what `make bench` needs beyond the test dependencies: s5cmd (the
# S3 CLI of the hand-written pipeline), built at a pinned version into .ci/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh
S5CMD_VERSION=v2.3.0
if [ ! -x .ci/bin/s5cmd ]; then
  echo "building s5cmd $S5CMD_VERSION into .ci/bin"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  printf 'module s5build\n\ngo 1.26\n\nrequire github.com/peak/s5cmd/v2 %s\n' "$S5CMD_VERSION" > "$tmp/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/peak/s5cmd/v2"\n' > "$tmp/tools.go"
  (cd "$tmp" && GOFLAGS=-mod=mod go build -o "$OLDPWD/.ci/bin/s5cmd" github.com/peak/s5cmd/v2)
fi
