package snapshot

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// lowerPriority re-executes the process with nice 10 and I/O priority
// best-effort 7. Both are per thread on Linux and the runtime already runs
// several threads, so one locked thread lowers itself and calls exec: the
// new process starts from that thread and every thread it makes inherits
// both. If anything fails the helper carries on at normal priority.
func lowerPriority(stderr io.Writer) {
	if os.Getenv(envReniced) != "" || os.Getenv(EnvNoReexec) == "1" {
		return
	}
	failed := make(chan error, 1)
	go func() {
		// Never unlocked: if exec fails the goroutine ends and the runtime
		// discards the lowered thread instead of reusing it.
		runtime.LockOSThread()
		if prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0); err == nil && 20-prio < helperNice {
			if err := unix.Setpriority(unix.PRIO_PROCESS, 0, helperNice); err != nil {
				failed <- fmt.Errorf("set nice %d: %w", helperNice, err)
				return
			}
		}
		ioprio := uintptr(ioprioClass<<ioprioShift | ioprioLevel)
		if _, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoPID, 0, ioprio); errno != 0 {
			failed <- fmt.Errorf("set io priority: %w", errno)
			return
		}
		env := append(os.Environ(), envReniced+"=1")
		failed <- fmt.Errorf("re-exec: %w", syscall.Exec("/proc/self/exe", os.Args, env))
	}()
	fmt.Fprintf(stderr, "helper: running at normal priority: %v\n", <-failed)
}

// currentPriority reports the calling thread's nice value and I/O priority.
func currentPriority() (nice int, ioprio string) {
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, 0); err == nil {
		nice = 20 - p
	}
	v, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoPID, 0, 0)
	if errno != 0 {
		return nice, "unknown"
	}
	classes := []string{"none", "rt", "be", "idle"}
	class := int(v >> ioprioShift)
	if class >= len(classes) {
		return nice, fmt.Sprintf("%d/%d", class, v&0xff)
	}
	return nice, fmt.Sprintf("%s/%d", classes[class], v&0xff)
}
