#!/usr/bin/env bash
# Lints every workflow the project ships with actionlint (pinned):
# .github/workflows/*.yml, examples/*.yml with the published action
# rewritten to `uses: ./` (so their with: inputs are checked against
# action.yml), and a generated workflow that gives the local action every
# input it declares. Installs actionlint into .ci/bin when missing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
actionlint_version="v1.7.12"
bin_dir="$repo/.ci/bin"
actionlint="$bin_dir/actionlint"
# The published action, as the examples use it.
published='sqlite-backup-action/sqlite-backup-action@v1'

log() { printf 'actionlint: %s\n' "$*"; }

if [[ ! -x "$actionlint" ]] || [[ "$("$actionlint" -version | head -n1)" != "$actionlint_version" ]]; then
	command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
	log "go install github.com/rhysd/actionlint/cmd/actionlint@$actionlint_version"
	mkdir -p "$bin_dir"
	(cd "$repo" && GOBIN="$bin_dir" go install "github.com/rhysd/actionlint/cmd/actionlint@$actionlint_version")
fi

# Generated files live inside the repository (actionlint resolves `uses: ./`
# from the repository root) but in .ci/bin, which git ignores.
work="$(mktemp -d "$bin_dir/lint.XXXXXX")"
trap 'rm -rf "$work"' EXIT

shopt -s nullglob
mkdir -p "$work/examples"
for f in "$repo"/examples/*.yml; do
	sed "s|uses: $published|uses: ./|" "$f" >"$work/examples/$(basename "$f")"
done

# A step giving the local action every input action.yml declares.
{
	cat <<'EOF'
name: every input
on: workflow_dispatch
jobs:
  all-inputs:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: backup
        uses: ./
        with:
EOF
	awk '/^inputs:/{in_inputs=1; next} /^[a-z]/{in_inputs=0} in_inputs && /^  [a-z0-9_]+:$/{sub(/:$/, "", $1); print "          " $1 ": \"\""}' "$repo/action.yml"
	cat <<'EOF'
      - run: echo "$ID $KEY"
        env:
          ID: ${{ steps.backup.outputs.backup_id }}
          KEY: ${{ steps.backup.outputs.manifest_key }}
EOF
} >"$work/every-input.yml"
if [[ "$(grep -c '^          [a-z0-9_]*: ""$' "$work/every-input.yml")" -lt 10 ]]; then
	log "found too few inputs in action.yml: the awk pattern no longer matches its layout" >&2
	exit 1
fi

cd "$repo"
# shellcheck and pyflakes are turned off so the result does not depend on
# what else the machine has installed.
files=(.github/workflows/*.yml "$work"/examples/*.yml "$work/every-input.yml")
log "checking ${#files[@]} workflows with actionlint $actionlint_version"
"$actionlint" -shellcheck= -pyflakes= "${files[@]}"
log "ok"
