package backup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
)

// TestFollowGrowingFile reads a file while another goroutine appends to
// it in uneven steps, as the helper's compressor does.
func TestFollowGrowingFile(t *testing.T) {
	want := make([]byte, 5<<20+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(r.IntN(256))
	}
	tests := []struct {
		name     string
		report   func(*snapshot.File) // changes the finished report
		noFinal  bool                 // the helper stops without one
		wantErr  string
		wantSame bool
	}{
		{name: "whole file", wantSame: true},
		{name: "reported shorter", report: func(f *snapshot.File) { f.StoredSize-- }, wantErr: "longer than the"},
		{name: "reported longer", report: func(f *snapshot.File) { f.StoredSize++ }, wantErr: "file ended at"},
		{name: "helper stops", noFinal: true, wantErr: "stopped before it finished"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "a.zst")
			w, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			rd, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			final := make(chan snapshot.File, 1)
			go func() {
				defer close(final)
				for off := 0; off < len(want); {
					n := min(len(want)-off, 1+r.IntN(1<<20))
					w.Write(want[off : off+n])
					off += n
					time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
				}
				if tt.noFinal {
					return
				}
				fin := snapshot.File{Name: "a", StoredSize: int64(len(want))}
				if tt.report != nil {
					tt.report(&fin)
				}
				final <- fin
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			f := follow(ctx, rd, final)
			defer f.Close()
			got, err := io.ReadAll(f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadAll() error = %v, want one containing %q", err, tt.wantErr)
				}
				if tt.noFinal && !errors.Is(err, snapshot.ErrNotFinished) {
					t.Errorf("error %v is not snapshot.ErrNotFinished", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, want) || f.Final().Name != "a" {
				t.Fatalf("ReadAll() = %d bytes (equal: %t), %v; final %+v", len(got), bytes.Equal(got, want), err, f.Final())
			}
		})
	}
}

// TestFollowCancelled checks that a reader waiting for a file that never
// grows returns once its context is done.
func TestFollowCancelled(t *testing.T) {
	rd := openABC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	f := follow(ctx, rd, make(chan snapshot.File))
	defer f.Close()
	got, err := io.ReadAll(f)
	if string(got) != "abc" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadAll() = %q, %v; want abc and the deadline", got, err)
	}
}

// TestFollowStalled: a growing file that stops growing with no final
// report fails once the stall bound passes, naming the stuck helper.
func TestFollowStalled(t *testing.T) {
	rd := openABC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	f := followStalling(ctx, rd, make(chan snapshot.File), 300*time.Millisecond)
	defer f.Close()
	got, err := io.ReadAll(f)
	if string(got) != "abc" || err == nil || !strings.Contains(err.Error(), "wrote nothing more") {
		t.Fatalf("ReadAll() = %q, %v; want abc and a stall error", got, err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("stall reported after %v, want soon after 300ms", took)
	}
}

// openABC opens a file holding "abc" that nobody appends to.
func openABC(t *testing.T) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "a.zst")
	if err := os.WriteFile(p, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	rd, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return rd
}
