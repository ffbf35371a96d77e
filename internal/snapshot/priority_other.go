//go:build !linux

package snapshot

import "io"

// lowerPriority does nothing off Linux: the helper only runs on Linux hosts,
// but the runner side of this package builds everywhere.
func lowerPriority(io.Writer) {}

// currentPriority is unknown off Linux.
func currentPriority() (nice int, ioprio string) { return 0, "unknown" }
