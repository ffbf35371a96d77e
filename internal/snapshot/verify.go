package snapshot

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// HeaderSize is the length of the SQLite database header.
const HeaderSize = 100

// sqliteMagic opens every SQLite 3 database file.
const sqliteMagic = "SQLite format 3\x00"

// maxIntegrityProblems bounds how many integrity_check rows an error lists.
const maxIntegrityProblems = 10

// ErrBadHeader is wrapped by every header check failure.
var ErrBadHeader = errors.New("not a complete SQLite database")

// Header holds the fields of a database header that the checks use.
type Header struct {
	PageSize  int   // bytes per page; the stored value 1 means 65536
	PageCount int64 // "in-header database size", in pages
}

// ParseHeader checks the first HeaderSize bytes of a database whose file is
// size bytes long: the magic string, a valid page size, and a page count
// that accounts for exactly size bytes. A snapshot that fails this was cut
// short or is not a database.
func ParseHeader(b []byte, size int64) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: header is %d bytes, want %d", ErrBadHeader, len(b), HeaderSize)
	}
	if string(b[:len(sqliteMagic)]) != sqliteMagic {
		return Header{}, fmt.Errorf("%w: bad magic %q", ErrBadHeader, bytes.TrimRight(b[:len(sqliteMagic)], "\x00"))
	}
	h := Header{PageSize: int(binary.BigEndian.Uint16(b[16:18])), PageCount: int64(binary.BigEndian.Uint32(b[28:32]))}
	if h.PageSize == 1 {
		h.PageSize = 65536
	}
	if h.PageSize < 512 || h.PageSize&(h.PageSize-1) != 0 {
		return Header{}, fmt.Errorf("%w: invalid page size %d", ErrBadHeader, h.PageSize)
	}
	if h.PageCount == 0 || int64(h.PageSize)*h.PageCount != size {
		return Header{}, fmt.Errorf("%w: %d pages of %d bytes, but the file is %d bytes",
			ErrBadHeader, h.PageCount, h.PageSize, size)
	}
	return h, nil
}

// readHeader checks the header of the database file at path.
func readHeader(path string) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, fmt.Errorf("check header: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Header{}, fmt.Errorf("check header: %w", err)
	}
	b := make([]byte, HeaderSize)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return Header{}, fmt.Errorf("check header of %s: %w", path, err)
	}
	h, err := ParseHeader(b[:n], st.Size())
	if err != nil {
		return Header{}, fmt.Errorf("check header of %s: %w", path, err)
	}
	return h, nil
}

// CheckFile verifies a downloaded, decompressed snapshot: its header, then a
// full PRAGMA integrity_check on a read-only connection. The file must not
// be in use by anyone else.
func CheckFile(ctx context.Context, path string) (Header, error) {
	h, err := readHeader(path)
	if err != nil {
		return Header{}, err
	}
	db, err := openReadOnly(path)
	if err != nil {
		return Header{}, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return Header{}, fmt.Errorf("integrity check of %s: %w", path, err)
	}
	defer rows.Close()
	var problems []string
	more := 0
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return Header{}, fmt.Errorf("integrity check of %s: %w", path, err)
		}
		for _, line := range strings.Split(s, "\n") { // SQLite may pack several problems in one row
			if len(problems) < maxIntegrityProblems {
				problems = append(problems, line)
			} else {
				more++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return Header{}, fmt.Errorf("integrity check of %s: %w", path, err)
	}
	if len(problems) == 1 && problems[0] == "ok" {
		return h, nil
	}
	msg := strings.Join(problems, "; ")
	if more > 0 {
		msg += fmt.Sprintf("; and %d more", more)
	}
	return Header{}, fmt.Errorf("integrity check of %s failed: %s", path, msg)
}

// openReadOnly opens the database at path read-only, on one connection,
// with a busy timeout. It honours the WAL (no immutable=1) and never writes
// the database itself; see readOnlyDSN.
func openReadOnly(path string) (*sql.DB, error) {
	dsn, err := readOnlyDSN(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// busyTimeoutMS is how long a read waits on a lock held by a writer.
const busyTimeoutMS = 10000

// readOnlyDSN builds the modernc.org/sqlite DSN that opens path read-only.
//
// The driver passes a name starting with "file:" to sqlite3_open_v2 whole,
// with SQLITE_OPEN_URI, so SQLite applies mode=ro; it also splits off its own
// parameters (_pragma) at the FIRST '?' of the whole string. The path is
// therefore percent-encoded byte by byte (SQLite decodes %HH in the path),
// which keeps '?', '#', '%' and the rest of a file name out of both parsers.
func readOnlyDSN(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	// synchronous(OFF) only affects what this connection writes: the
	// VACUUM INTO output, a transient copy verified by hash, is then not
	// fsynced page by page while the app is committing.
	q := url.Values{"mode": {"ro"}, "_pragma": {fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS), "synchronous(OFF)"}}
	return "file:" + escapeURIPath(abs) + "?" + q.Encode(), nil
}

// escapeURIPath percent-encodes every byte of an absolute path except
// unreserved characters and '/'.
func escapeURIPath(p string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '/', c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// Decompressor returns a reader of the raw snapshot stored with compression.
// Closing it releases the decoder; it does not close r.
func Decompressor(compression string, r io.Reader) (io.ReadCloser, error) {
	switch compression {
	case CompressionZstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
		return d.IOReadCloser(), nil
	case CompressionGzip:
		g, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip decoder: %w", err)
		}
		return g, nil
	case CompressionNone:
		return io.NopCloser(r), nil
	default:
		return nil, fmt.Errorf("unknown compression %q (want zstd, gzip or none)", compression)
	}
}
