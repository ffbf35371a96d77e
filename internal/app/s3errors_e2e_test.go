package app_test

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// s3ErrorProxy is an HTTP proxy in front of the real S3 server that answers
// every tenth request itself with 503 SlowDown, 500 InternalError, or a
// reset connection, in turn: about 10% of requests fail.
type s3ErrorProxy struct {
	requests, injected atomic.Int64
}

func (p *s3ErrorProxy) handler(target *url.URL) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(target)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := p.requests.Add(1)
		if n%10 != 0 {
			rp.ServeHTTP(w, r)
			return
		}
		p.injected.Add(1)
		switch (n / 10) % 3 {
		case 0:
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
		case 1:
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>`))
		default:
			hj, ok := w.(http.Hijacker)
			if !ok {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			c, _, err := hj.Hijack()
			if err == nil {
				c.Close() // the connection is reset mid-request
			}
		}
	})
}

// TestBackupThroughS3Errors: with about 10% of S3 requests failing (503
// SlowDown, 500, reset), backups still complete, through the SDK's and the
// backup's own retries, and every group checks out.
func TestBackupThroughS3Errors(t *testing.T) {
	r := newRig(t, 2000, 512)
	target, err := url.Parse(r.s3.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &s3ErrorProxy{}
	srv := &http.Server{Handler: p.handler(target)}
	ln := testutil.Listen(t)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	for i := 0; i < 3; i++ {
		waitNextSecond()
		flags := append(r.flags(), "--endpoint", "http://"+ln.Addr().String(), "--skip-unchanged=false", "--part-size", "5")
		code, stdout, stderr := runMain(t, append([]string{"backup"}, flags...), r.env)
		if code != app.ExitOK {
			t.Fatalf("run %d: exit %d\n%s\n%s", i, code, stdout, stderr)
		}
		checkGroup(t, r.s3, backupIDFrom(t, stdout))
		if strings.Contains(stderr, "error:") {
			t.Errorf("run %d printed an error although it succeeded:\n%s", i, stderr)
		}
	}
	t.Logf("%d S3 requests, %d failed on purpose", p.requests.Load(), p.injected.Load())
	if p.injected.Load() < 3 {
		t.Errorf("only %d faults were injected: the test proved nothing", p.injected.Load())
	}
	assertNoTempLeft(t, r.tmp)
}
