package snapshot

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func header(magic string, pageSize uint16, pageCount uint32) []byte {
	b := make([]byte, HeaderSize)
	copy(b, magic)
	binary.BigEndian.PutUint16(b[16:], pageSize)
	binary.BigEndian.PutUint32(b[28:], pageCount)
	return b
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name    string
		b       []byte
		size    int64
		want    Header
		wantErr string
	}{
		{"good", header(sqliteMagic, 4096, 3), 3 * 4096, Header{PageSize: 4096, PageCount: 3}, ""},
		{"page size 1 means 65536", header(sqliteMagic, 1, 2), 2 * 65536, Header{PageSize: 65536, PageCount: 2}, ""},
		{"bad magic", header("SQLite format 2\x00", 4096, 3), 3 * 4096, Header{}, "bad magic"},
		{"short header", header(sqliteMagic, 4096, 3)[:60], 60, Header{}, "header is 60 bytes"},
		{"truncated file", header(sqliteMagic, 4096, 3), 2 * 4096, Header{}, "3 pages of 4096 bytes, but the file is 8192 bytes"},
		{"trailing bytes", header(sqliteMagic, 4096, 3), 3*4096 + 1, Header{}, "but the file is 12289 bytes"},
		{"invalid page size", header(sqliteMagic, 1000, 3), 3000, Header{}, "invalid page size 1000"},
		{"zero pages", header(sqliteMagic, 4096, 0), 0, Header{}, "0 pages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHeader(tt.b, tt.size)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("ParseHeader() = %+v, %v; want %+v, nil", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrBadHeader) {
				t.Fatalf("ParseHeader() error = %v, want ErrBadHeader containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestReadOnlyDSN(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/data/production.sqlite3", "file:/data/production.sqlite3?"},
		{"/d/a b'c.db", "file:/d/a%20b%27c.db?"},
		{"/d/x?mode=rw#f%.db", "file:/d/x%3Fmode%3Drw%23f%25.db?"},
	}
	for _, tt := range tests {
		got, err := readOnlyDSN(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, tt.want) || strings.Count(got, "?") != 1 ||
			!strings.Contains(got, "mode=ro") || strings.Contains(got, "immutable") {
			t.Errorf("readOnlyDSN(%q) = %q, want prefix %q, one '?', mode=ro, no immutable", tt.path, got, tt.want)
		}
	}
}

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	w := openWriter(t, good)
	addRows(t, w, 2000, 200)
	if _, err := w.Exec("CREATE INDEX ledger_amount ON ledger(amount)"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := CheckFile(context.Background(), good)
	if err != nil || h.PageSize != 4096 || h.PageCount < 100 {
		t.Fatalf("CheckFile(good) = %+v, %v; want 4096-byte pages, ok", h, err)
	}

	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.db")
	if err := os.WriteFile(truncated, data[:len(data)-4096], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckFile(context.Background(), truncated); !errors.Is(err, ErrBadHeader) {
		t.Errorf("CheckFile(truncated) error = %v, want ErrBadHeader", err)
	}

	corrupt := filepath.Join(dir, "corrupt.db")
	bad := bytes.Clone(data)
	for i := len(bad) / 2; i < len(bad)/2+3*4096; i++ { // scribble over three pages in the middle
		bad[i] = byte(i * 7)
	}
	if err := os.WriteFile(corrupt, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = CheckFile(context.Background(), corrupt)
	if err == nil || !strings.Contains(err.Error(), "integrity check of "+corrupt) {
		t.Errorf("CheckFile(corrupt) error = %v, want an integrity check failure naming the file", err)
	}
	t.Logf("corrupt file: %v", err)
}

func TestDecompressorUnknown(t *testing.T) {
	if _, err := Decompressor("lz4", strings.NewReader("")); err == nil {
		t.Fatal("Decompressor(lz4) succeeded, want an error")
	}
	r, err := Decompressor(CompressionNone, strings.NewReader("raw"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); string(got) != "raw" {
		t.Errorf("none decompressor read %q, want %q", got, "raw")
	}
}
