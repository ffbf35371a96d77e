package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPair(t *testing.T) {
	errHelper := errors.New("helper: disk full")
	errEmit := errors.New("upload failed")
	tests := []struct {
		name     string
		reports  []File
		stopWith error // what produce returns after its reports
		emitErr  error // what emit returns for the first file
		wantErr  error
		want     []string // per emitted file: name and the finished report's sha256 ("-" for none)
	}{
		{name: "growing then finished", reports: []File{
			{Name: "a", Growing: true}, {Name: "a", SHA256: "A"},
			{Name: "b", Unchanged: true, SHA256: "B"},
			{Name: "c", Growing: true}, {Name: "c", SHA256: "C"},
		}, want: []string{"a:A", "b:B", "c:C"}},
		{name: "helper stops mid-file", reports: []File{{Name: "a", Growing: true}},
			stopWith: errHelper, wantErr: errHelper, want: []string{"a:-"}},
		{name: "emit fails", reports: []File{{Name: "a", SHA256: "A"}, {Name: "b", SHA256: "B"}},
			emitErr: errEmit, wantErr: errEmit, want: []string{"a:A"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			produceCancelled := false
			err := pair(context.Background(), func(ctx context.Context, report func(File) error) error {
				for _, f := range tt.reports {
					if err := report(f); err != nil {
						produceCancelled = ctx.Err() != nil
						return err
					}
				}
				return tt.stopWith
			}, func(f File) error {
				if f.Growing {
					fin, ok := <-f.Final // emit blocks here while produce goes on
					if !ok {
						got = append(got, f.Name+":-")
						return fmt.Errorf("read %s: %w", f.Name, ErrNotFinished)
					}
					f = fin
				}
				got = append(got, f.Name+":"+f.SHA256)
				return tt.emitErr
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("pair() = %v, want %v", err, tt.wantErr)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("emitted %q, want %q", got, tt.want)
			}
			if tt.emitErr != nil && !produceCancelled {
				t.Errorf("produce went on after emit failed")
			}
		})
	}
}

// TestReleasingReaderFreesBlocks reads a 64 MiB file through
// releasingReader and checks that the blocks behind it were released
// while the size stayed.
func TestReleasingReaderFreesBlocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "raw")
	const size = 64 << 20
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for range size >> 20 {
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	f, err = os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &releasingReader{f: f}
	if _, err := io.CopyN(io.Discard, r, 40<<20); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if r.disabled {
		t.Skipf("this file system cannot punch holes: %s", p)
	}
	allocated := st.Blocks * 512
	if st.Size != size || allocated > size-32<<20 {
		t.Fatalf("after reading 40 MiB: size %d, %d bytes allocated; want size %d and at most %d allocated", st.Size, allocated, size, size-32<<20)
	}
	// What is left reads back intact.
	rest, err := io.ReadAll(r)
	if err != nil || len(rest) != size-40<<20 || rest[5] != buf[5] {
		t.Fatalf("rest: %d bytes, %v", len(rest), err)
	}
	t.Logf("40 of 64 MiB read: %d MiB still allocated", allocated>>20)
}

// TestRunFollowReportsGrowing checks the helper's --follow reports: each
// compressed file first as growing (before it is written), then finished.
func TestRunFollowReportsGrowing(t *testing.T) {
	dir := t.TempDir()
	addRows(t, openWriter(t, filepath.Join(dir, "a.sqlite3")), 2000, 100)
	addRows(t, openWriter(t, filepath.Join(dir, "b.sqlite3")), 10, 100)
	var lines []File
	err := Run(context.Background(), Request{Dir: dir, Include: "*.sqlite3", OutDir: t.TempDir(), Compression: CompressionZstd, Follow: true},
		func(f File) error {
			if f.Growing {
				st, err := os.Stat(f.Path)
				if err != nil || st.Size() != 0 || f.StoredSHA256 != "" || f.Size == 0 {
					t.Errorf("growing report %+v: file %v, %v; want an empty file, a raw size and no hashes", f, st, err)
				}
			}
			lines = append(lines, f)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		got = append(got, fmt.Sprintf("%s growing=%t", l.Name, l.Growing))
	}
	want := "a.sqlite3 growing=true,a.sqlite3 growing=false,b.sqlite3 growing=true,b.sqlite3 growing=false"
	if strings.Join(got, ",") != want {
		t.Fatalf("reports %q, want %q", got, want)
	}
	if lines[1].Size != lines[0].Size || lines[1].StoredSHA256 == "" || lines[1].Path != lines[0].Path {
		t.Errorf("finished report %+v does not complete growing one %+v", lines[1], lines[0])
	}
}
