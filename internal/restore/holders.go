package restore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/remote"
)

// holdersTimeout bounds the scan for processes holding the databases.
const holdersTimeout = 2 * time.Minute

// holdersScript prints "PID COMMAND" for every process with an open file
// descriptor on one of its arguments or their -wal/-shm files, matched by
// device and inode (so a container's own path for the file matches too),
// then "unreadable N": the processes whose descriptors this user may not
// read. It needs only sh, stat, find and /proc, and exits 3 without /proc
// rather than report that nothing holds the files.
const holdersScript = `
[ -d /proc/self/fd ] || { echo "no /proc/self/fd on this host: cannot tell which processes hold the databases" >&2; exit 3; }
want=" "
for f in "$@"; do
  for g in "$f" "$f-wal" "$f-shm"; do
    if [ -e "$g" ]; then
      id=$(stat -L -c %d:%i -- "$g") || exit 3
      want="$want$id "
    fi
  done
done
if [ "$want" != " " ]; then
  find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 -exec stat -L -c '%d:%i %n' -- {} + 2>/dev/null |
  while read -r id name; do
    case "$want" in
    *" $id "*) pid=${name#/proc/}; pid=${pid%%/*}; echo "$pid $(tr -d '\n' < "/proc/$pid/comm" 2>/dev/null)" ;;
    esac
  done | sort -u
fi
n=0
for p in /proc/[0-9]*; do [ -r "$p/fd" ] || n=$((n+1)); done
echo "unreadable $n"
`

// findHolders lists the processes (as "PID (command)") that hold one of
// files, or its -wal or -shm, open on t, and how many processes could not
// be looked into.
func findHolders(ctx context.Context, t Target, files []string) (holders []string, unreadable int, err error) {
	ctx, cancel := context.WithTimeout(ctx, holdersTimeout)
	defer cancel()
	out, err := t.Run(ctx, remote.Command(append([]string{"sh", "-c", holdersScript, "sh"}, files...)...))
	if err != nil {
		return nil, 0, fmt.Errorf("look for processes holding the databases on %s: %w", t, err)
	}
	seen := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pid, comm, _ := strings.Cut(line, " ")
		if pid == "unreadable" {
			unreadable, err = strconv.Atoi(strings.TrimSpace(comm))
			seen = err == nil
			continue
		}
		if _, err := strconv.Atoi(pid); err != nil {
			return nil, 0, fmt.Errorf("look for processes holding the databases on %s: unexpected output %q", t, truncate(line, 100))
		}
		holders = append(holders, fmt.Sprintf("%s (%s)", pid, comm))
	}
	if !seen {
		return nil, 0, fmt.Errorf("look for processes holding the databases on %s: the scan did not finish: %q", t, truncate(string(out), 200))
	}
	return holders, unreadable, nil
}
