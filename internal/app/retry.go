package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/pkg/sftp"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/remote"
)

// Backoff bounds for retries.
const (
	retryFirstWait = 2 * time.Second
	retryMaxWait   = 30 * time.Second
)

// retry runs fn up to 1+retries times while it fails transiently, waiting
// 2 s, 4 s, 8 s... (at most 30 s) between attempts. Each attempt of a
// backup is a complete, separate backup: a failed one leaves no manifest.
func retry(ctx context.Context, log *slog.Logger, retries int, fn func() error) error {
	wait := retryFirstWait
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt > retries || !transient(err) {
			if err != nil && attempt > 1 {
				return fmt.Errorf("after %d attempts: %w", attempt, err)
			}
			return err
		}
		log.Warn("transient failure, retrying", "attempt", attempt, "of", retries+1, "wait", wait, "error", err)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMaxWait)
	}
}

// transient tells failures worth another attempt (a dropped connection,
// a server-side hiccup) from ones that will fail the same way again.
func transient(err error) bool {
	switch {
	case errors.Is(err, remote.ErrHostKeyMismatch), errors.Is(err, remote.ErrHostKeyUnknown),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, sftp.ErrSSHFxConnectionLost), errors.Is(err, net.ErrClosed):
		return true
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection lost", "connection reset", "broken pipe", "use of closed network connection",
		"SlowDown", "ssh: disconnect", "unexpected EOF", "EOF"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
