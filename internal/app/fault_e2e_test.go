package app_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// TestBackupSurvivesCutConnections cuts the SSH connection, and separately
// the S3 connections, at points spread over a whole backup. Every run must
// either succeed (through a retry) or fail with a clear line; no group may
// ever have a manifest without all its files; and after the next run the
// host's temp dir is empty.
func TestBackupSurvivesCutConnections(t *testing.T) {
	r := newRig(t, 1500, 512)
	layout := catalog.Layout{Prefix: "db_backups", Environment: "production"}
	const points = 10 // per link, 20 cuts in all; bounded: each run takes about a second plus a 2 s backoff

	// Measure how many bytes one backup moves over each link.
	sshProbe := testutil.StartFaultProxy(t, r.sshd.Addr())
	sshBytes := runThrough(t, r, sshProbe, nil, 0)

	for _, link := range []string{"ssh", "s3"} {
		for i := 1; i <= points; i++ {
			cut := sshBytes * int64(i) / (points + 1)
			t.Run(fmt.Sprintf("%s cut %d", link, i), func(t *testing.T) {
				waitNextSecond()
				var sshP, s3P *testutil.FaultProxy
				if link == "ssh" {
					sshP = testutil.StartFaultProxy(t, r.sshd.Addr(), cut)
				} else {
					// The SDK spreads requests over many connections: cut each of the
					// first eight after 24..240 KiB, at a different point each run.
					c := int64(i) * 24 << 10
					s3P = testutil.StartFaultProxy(t, strings.TrimPrefix(r.s3.Endpoint, "http://"), c, c, c, c, c, c, c, c)
				}
				runThrough(t, r, sshP, s3P, 1)
			})
		}
	}
	// Every group in the bucket is complete and checks out; no markers left.
	objs := listKeys(t, r.s3)
	var sobjs []store.Object
	for _, k := range objs {
		sobjs = append(sobjs, store.Object{Key: k})
	}
	groups, foreign := layout.Groups(sobjs)
	if len(foreign) > 0 {
		t.Errorf("foreign keys left: %v", foreign)
	}
	for _, g := range groups {
		if g.State != catalog.StateComplete {
			t.Errorf("group %s is %s after the fault runs", g.ID, g.State)
			continue
		}
		checkGroup(t, r.s3, g.ID)
	}
	assertNoTempLeft(t, r.tmp)
}

// runThrough runs one backup with SSH and/or S3 through proxies and
// returns the bytes that went through the SSH proxy.
func runThrough(t *testing.T, r *rig, sshP, s3P *testutil.FaultProxy, retries int) int64 {
	t.Helper()
	// Every run sends everything, so every cut point falls inside a transfer.
	flags := append(r.flags(), "--retries", strconv.Itoa(retries), "--connect-timeout", "10s",
		"--skip-unchanged=false", "--helper-cache=false")
	if sshP != nil {
		// known_hosts names host:port; through the proxy the pinned key is what holds.
		flags = append(flags, "--ssh-port", strconv.Itoa(sshP.Port), "--ssh-host-fingerprint", r.sshd.HostKeyFingerprint)
	}
	if s3P != nil {
		flags = append(flags, "--endpoint", "http://"+s3P.Addr())
	}
	start := time.Now()
	code, stdout, stderr := runMain(t, append([]string{"backup"}, flags...), r.env)
	t.Logf("exit %d in %s", code, time.Since(start).Round(time.Millisecond))
	switch code {
	case app.ExitOK:
		checkGroup(t, r.s3, backupIDFrom(t, stdout))
	case app.ExitFailed:
		lines := grepLines(stderr, "error: ")
		if lines == "" {
			t.Errorf("failed without an error line:\n%s", stderr)
		}
		t.Logf("failed clearly: %s", lines)
		if retries > 0 {
			t.Errorf("a single cut must be survived with a retry:\n%s", stderr)
		}
	default:
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, p := range []*testutil.FaultProxy{sshP, s3P} {
		if p != nil {
			t.Logf("proxy: %d connections, %d bytes, %d cut", p.Conns(), p.Bytes(), p.Cuts())
		}
		if p != nil && retries > 0 && p.Cuts() == 0 {
			t.Errorf("the proxy never cut a connection: the test proved nothing")
		}
	}
	if sshP != nil {
		return sshP.Bytes()
	}
	return 0
}
