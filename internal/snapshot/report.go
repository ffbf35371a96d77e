// Package snapshot takes transactionally consistent snapshots of SQLite
// databases. The helper side (Run) runs on the database host: it opens each
// database read-only, takes VACUUM INTO a private temp dir, checks the
// result, compresses it and reports one JSON line per file on stdout. The
// runner side reads those reports (Report) and fetches the compressed files.
package snapshot

// Compression names, as used in inputs and in the manifest.
const (
	CompressionZstd = "zstd"
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// Extension returns the file suffix a compression adds (".zst", ".gz", "").
func Extension(compression string) string {
	switch compression {
	case CompressionZstd:
		return ".zst"
	case CompressionGzip:
		return ".gz"
	default:
		return ""
	}
}

// Request is what the runner asks the helper to do.
type Request struct {
	Dir         string // directory holding the databases (absolute)
	Include     string // glob of database file names, e.g. "*.sqlite3"; no slash
	OutDir      string // private temp dir for the snapshots (absolute)
	Compression string // zstd, gzip or none
	// Previous maps a database name to the SHA-256 of its snapshot in the
	// newest complete backup. A snapshot with the same hash is reported
	// Unchanged and not compressed or sent: the runner copies the stored
	// object server-side instead.
	Previous map[string]string
	// Follow reports each file twice when it is compressed: as Growing once
	// the compressed file exists, so the runner reads it while it is being
	// written, then finished, with its sizes and hashes.
	Follow bool
}

// File is the helper's report for one database: one JSON line on stdout.
type File struct {
	Name          string `json:"name"`           // database file name, e.g. production.sqlite3
	Size          int64  `json:"size"`           // bytes of the raw snapshot
	SHA256        string `json:"sha256"`         // hex SHA-256 of the raw snapshot
	PageSize      int    `json:"page_size"`      // from the snapshot header
	PageCount     int64  `json:"page_count"`     // from the snapshot header
	SQLiteVersion string `json:"sqlite_version"` // of the library that took it
	Path          string `json:"path"`           // absolute path of the stored (compressed) file on the host
	StoredSize    int64  `json:"stored_size"`    // bytes of the stored file
	StoredSHA256  string `json:"stored_sha256"`  // hex SHA-256 of the stored file
	Compression   string `json:"compression"`
	Unchanged     bool   `json:"unchanged,omitempty"` // equals Request.Previous: nothing stored, Path empty
	// Growing: Path is still being written; the same Name is reported again
	// when it is finished. Stored sizes and hashes are not known yet.
	Growing    bool  `json:"growing,omitempty"`
	SnapshotMS int64 `json:"snapshot_ms"` // time spent in VACUUM INTO
	CompressMS int64 `json:"compress_ms"` // time spent compressing and hashing
	// Final, on the runner, delivers a Growing file's finished report; it
	// is closed without one when the helper stopped first.
	Final <-chan File `json:"-"`
}

// Line is one line the helper prints: a finished file, or a fatal error
// (then the helper exits non-zero).
type Line struct {
	File  *File  `json:"file,omitempty"`
	Error string `json:"error,omitempty"`
}
