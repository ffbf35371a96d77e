#!/usr/bin/env bash
# Installs what the end-to-end tests need on a Debian 12 machine, as root and
# without standard input. Idempotent: it only acts on what is missing, and
# says what it does.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
versitygw_version="v1.8.0"
test_user="sbatest"
export DEBIAN_FRONTEND=noninteractive

log() { printf 'deps: %s\n' "$*"; }

if [[ "$(id -u)" -ne 0 ]]; then
	log "must run as root" >&2
	exit 1
fi

# package name -> a path or command that shows it is installed
declare -A wants=(
	[openssh-server]=/usr/sbin/sshd
	[openssh-client]="ssh scp ssh-keygen"
	[sqlite3]=sqlite3
	[zstd]=zstd
	[bubblewrap]=bwrap
	[time]=/usr/bin/time
	[iproute2]=ip
)

missing=()
for pkg in "${!wants[@]}"; do
	for bin in ${wants[$pkg]}; do
		if [[ "$bin" == /* ]]; then
			[[ -x "$bin" ]] && continue
		else
			command -v "$bin" >/dev/null 2>&1 && continue
			# /usr/sbin may be missing from a non-login root PATH
			[[ -x "/usr/sbin/$bin" || -x "/sbin/$bin" ]] && continue
		fi
		log "missing $bin (package $pkg)"
		missing+=("$pkg")
		break
	done
done

if ((${#missing[@]} > 0)); then
	log "apt-get update"
	apt-get update -q
	log "apt-get install ${missing[*]}"
	apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	log "packages present: ${!wants[*]}"
fi

if id -u "$test_user" >/dev/null 2>&1; then
	log "user $test_user present"
else
	log "useradd $test_user"
	useradd --create-home --shell /bin/sh "$test_user"
fi
# sshd without PAM refuses a locked account ("!" in shadow) even for keys.
if [[ "$(getent shadow "$test_user" | cut -d: -f2)" == '!'* ]]; then
	log "unlock $test_user's password field for key logins"
	usermod -p '*' "$test_user"
fi

if [[ ! -d /run/sshd ]]; then
	log "mkdir /run/sshd"
	install -d -m 0755 /run/sshd
fi

bin_dir="$repo/.ci/bin"
if [[ -x "$bin_dir/versitygw" ]]; then
	log "versitygw present at $bin_dir/versitygw"
else
	command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
	log "go install github.com/versity/versitygw/cmd/versitygw@$versitygw_version (a few minutes cold)"
	mkdir -p "$bin_dir"
	(cd "$repo" && GOBIN="$bin_dir" go install \
		"github.com/versity/versitygw/cmd/versitygw@$versitygw_version")
	log "built $bin_dir/versitygw"
fi
log "done"
