package snapshot

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestCleanStale(t *testing.T) {
	tmp := t.TempDir()
	mk := func(name string, lock bool) string {
		t.Helper()
		d := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(d, "out"), 0o700); err != nil {
			t.Fatal(err)
		}
		if lock {
			if err := os.WriteFile(filepath.Join(d, lockName), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	dead := mk(TempPrefix+"dead", true)
	live := mk(TempPrefix+"live", true)
	own := mk(TempPrefix+"own", true)
	noLock := mk(TempPrefix+"setting-up", false)
	other := mk("someone-else", true)

	held, err := holdLock(filepath.Join(live, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := holdLock(filepath.Join(live, "out")); err == nil {
		t.Fatal("a second helper got a held lock")
	}

	if got := cleanStale(tmp, own, io.Discard); got != 1 {
		t.Errorf("removed %d dirs, want 1", got)
	}
	for _, tc := range []struct {
		dir  string
		want bool
	}{{dead, false}, {live, true}, {own, true}, {noLock, true}, {other, true}} {
		_, err := os.Stat(tc.dir)
		if got := err == nil; got != tc.want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(tc.dir), got, tc.want)
		}
	}
}
