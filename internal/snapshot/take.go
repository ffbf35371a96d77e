package snapshot

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

const (
	partialSuffix = ".partial"
	mib           = 1 << 20
	// spaceSlack is added to every free-space estimate: file system
	// overhead, and compressed output that has not met a released block yet.
	spaceSlack = 8 * mib
	// copyBuffer is the read/write buffer of the hash and compress pass.
	copyBuffer = 1 * mib

	// Extended result codes (sqlite3.h) that readOnlyHint explains.
	sqliteReadonlyRecovery = 8 | 1<<8
	sqliteReadonlyRollback = 8 | 3<<8
	sqliteReadonlyCantInit = 8 | 5<<8
)

// taker holds Run's seams to the operating system.
type taker struct {
	// statfs reports the filesystem holding a path (unix.Statfs).
	statfs func(path string, st *unix.Statfs_t) error
	// spaceWait bounds how long a snapshot waits for the runner to free
	// the space of earlier ones.
	spaceWait time.Duration
}

// defaultSpaceWait is how long a snapshot waits for space that earlier
// snapshots, still being read, will free.
const defaultSpaceWait = 10 * time.Minute

// spaceGrace is how long a shortage is still waited out once no earlier
// snapshot is left in the out dir.
const spaceGrace = 5 * time.Second

// Run snapshots every database in req.Dir whose name matches req.Include,
// in name order, into req.OutDir, and calls emit with each finished file
// before it starts the next one. It stops at the first error, including one
// from emit, and leaves no partial output of the failed file behind.
//
// Each database is opened read-only (the live WAL is read, never
// checkpointed) and copied with VACUUM INTO, which gives a consistent,
// self-contained file while writers carry on.
func Run(ctx context.Context, req Request, emit func(File) error) error {
	return taker{statfs: unix.Statfs, spaceWait: defaultSpaceWait}.run(ctx, req, emit)
}

func (t taker) run(ctx context.Context, req Request, emit func(File) error) error {
	req, names, err := plan(req)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("snapshot %s: %w", name, err)
		}
		f, err := t.one(ctx, req, name, emit)
		if err != nil {
			return err
		}
		if err := emit(f); err != nil {
			return fmt.Errorf("report %s: %w", name, err)
		}
	}
	return nil
}

// plan validates req, makes its dirs absolute and lists the databases.
func plan(req Request) (Request, []string, error) {
	if Extension(req.Compression) == "" && req.Compression != CompressionNone {
		return req, nil, fmt.Errorf("unknown compression %q (want zstd, gzip or none)", req.Compression)
	}
	if req.Include == "" || strings.ContainsAny(req.Include, `/\`) {
		return req, nil, fmt.Errorf("include pattern %q must be a non-empty file name pattern without a slash", req.Include)
	}
	if _, err := filepath.Match(req.Include, ""); err != nil {
		return req, nil, fmt.Errorf("include pattern %q: %w", req.Include, err)
	}
	var err error
	if req.Dir, err = filepath.Abs(req.Dir); err != nil {
		return req, nil, fmt.Errorf("database dir: %w", err)
	}
	if req.OutDir, err = filepath.Abs(req.OutDir); err != nil {
		return req, nil, fmt.Errorf("output dir: %w", err)
	}
	dirInfo, err := os.Stat(req.Dir)
	if err != nil {
		return req, nil, fmt.Errorf("database dir: %w", err)
	}
	outInfo, err := os.Stat(req.OutDir)
	if err != nil {
		return req, nil, fmt.Errorf("output dir: %w", err)
	}
	if os.SameFile(dirInfo, outInfo) {
		return req, nil, fmt.Errorf("output dir %s is the database dir: snapshots would overwrite the databases", req.OutDir)
	}
	entries, err := os.ReadDir(req.Dir)
	if err != nil {
		return req, nil, fmt.Errorf("list databases: %w", err)
	}
	var names []string
	for _, e := range entries {
		if ok, _ := filepath.Match(req.Include, e.Name()); !ok || isSideFile(e.Name()) {
			continue
		}
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			return req, nil, fmt.Errorf("%s matches %q but is a symlink; refusing to follow it (include the target's own name instead)",
				filepath.Join(req.Dir, e.Name()), req.Include)
		case e.Type().IsRegular():
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return req, nil, fmt.Errorf("no database files in %s match %q", req.Dir, req.Include)
	}
	sort.Strings(names)
	return req, names, checkCollisions(names, req.Compression)
}

// isSideFile reports SQLite's own side files, never databases themselves.
func isSideFile(name string) bool {
	for _, s := range []string{"-wal", "-shm", "-journal"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// checkCollisions refuses database names whose files in OutDir would
// overwrite each other (a.db and a.db.zst both included, say).
func checkCollisions(names []string, compression string) error {
	owner := make(map[string]string)
	for _, n := range names {
		for _, out := range []string{n, n + partialSuffix, n + Extension(compression)} {
			if prev, ok := owner[out]; ok && prev != n {
				return fmt.Errorf("databases %s and %s would both write %s; narrow the include pattern", prev, n, out)
			}
			owner[out] = n
		}
	}
	return nil
}

// one snapshots, checks and compresses the database name. With
// req.Follow it reports the file as Growing (through emit) when the
// compressed file is created, so the runner can read it as it grows.
func (t taker) one(ctx context.Context, req Request, name string, emit func(File) error) (_ File, err error) {
	src := filepath.Join(req.Dir, name)
	partial := filepath.Join(req.OutDir, name+partialSuffix)
	raw := filepath.Join(req.OutDir, name)
	stored := raw + Extension(req.Compression)
	defer func() {
		if err != nil {
			err = errors.Join(err, removeAll(partial, raw, stored))
		}
	}()
	if err := t.waitForSpace(ctx, src, req.OutDir, name); err != nil {
		return File{}, err
	}
	f := File{Name: name, Compression: req.Compression, Path: stored}
	start := time.Now()
	if f.SQLiteVersion, err = vacuumInto(ctx, src, partial); err != nil {
		return File{}, fmt.Errorf("snapshot %s: %w", src, err)
	}
	f.SnapshotMS = time.Since(start).Milliseconds()
	if err := os.Rename(partial, raw); err != nil {
		return File{}, fmt.Errorf("snapshot %s: %w", src, err)
	}
	h, err := readHeader(raw)
	if err != nil {
		return File{}, fmt.Errorf("snapshot %s: %w", src, err)
	}
	f.PageSize, f.PageCount = h.PageSize, h.PageCount
	start = time.Now()
	if prev, ok := req.Previous[name]; ok {
		// VACUUM INTO of unchanged content is byte-identical: one cheap
		// hashing pass spares compressing and sending it.
		if f.SHA256, f.Size, err = hashFile(raw); err != nil {
			return File{}, fmt.Errorf("hash snapshot of %s: %w", src, err)
		}
		if f.SHA256 == prev {
			f.Unchanged, f.Path, f.Compression = true, "", ""
			f.CompressMS = time.Since(start).Milliseconds()
			return f, os.Remove(raw)
		}
	}
	var started func() error
	if req.Follow {
		started = func() error {
			st, err := os.Stat(raw)
			if err != nil {
				return err
			}
			g := File{Name: f.Name, Size: st.Size(), PageSize: f.PageSize, PageCount: f.PageCount,
				SQLiteVersion: f.SQLiteVersion, Path: f.Path, Compression: f.Compression, Growing: true, SnapshotMS: f.SnapshotMS}
			if err := emit(g); err != nil {
				return fmt.Errorf("report %s: %w", name, err)
			}
			return nil
		}
	}
	if err := hashAndCompress(raw, stored, req.Compression, &f, started); err != nil {
		return File{}, fmt.Errorf("compress snapshot of %s: %w", src, err)
	}
	f.CompressMS = time.Since(start).Milliseconds()
	if stored != raw {
		if err := os.Remove(raw); err != nil {
			return File{}, fmt.Errorf("remove raw snapshot: %w", err)
		}
	}
	return f, nil
}

// hashFile returns the hex SHA-256 and size of a file.
func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// waitForSpace is checkSpace, except that while earlier snapshots are still
// in outDir (the runner is still reading them; it removes each when it is
// stored) a shortage is waited out, for up to spaceWait: the next snapshot
// overlaps the previous transfer when there is room, and waits when not.
func (t taker) waitForSpace(ctx context.Context, src, outDir, name string) error {
	deadline := time.Now().Add(t.spaceWait)
	var emptySince time.Time
	sawEarlier := false
	for {
		err := t.checkSpace(src, outDir, name)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		entries, rerr := os.ReadDir(outDir)
		if rerr != nil {
			return err
		}
		switch {
		case len(entries) > 0:
			emptySince = time.Time{}
			sawEarlier = true
		case !sawEarlier:
			return err // nothing to wait for
		case emptySince.IsZero():
			emptySince = time.Now()
		case time.Since(emptySince) > spaceGrace:
			return err // nothing left to wait for
		}
		// A file the runner just removed can hold its blocks a moment
		// longer (seen on tmpfs: the SFTP server's side of it), hence
		// the grace.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (waited for the runner to take the previous snapshot: %w)", err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkSpace fails when outDir's filesystem cannot hold the snapshot of src
// while it is compressed, estimated from the database and WAL sizes.
func (t taker) checkSpace(src, outDir, name string) error {
	var need int64
	for _, p := range []string{src, src + "-wal"} {
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) && p != src {
			continue
		}
		if err != nil {
			return fmt.Errorf("size of %s: %w", name, err)
		}
		need += st.Size()
	}
	// The compressed copy takes the blocks the raw snapshot releases as it
	// is read (releasingReader): about one database's worth in all.
	need = need + min(need, releaseEvery) + spaceSlack
	var st unix.Statfs_t
	if err := t.statfs(outDir, &st); err != nil {
		return fmt.Errorf("free space in %s: %w", outDir, err)
	}
	free := uint64(st.Bavail) * uint64(st.Bsize)
	if free < uint64(need) {
		return fmt.Errorf("not enough space in %s for %s: %d MiB free, about %d MiB needed (set remote_temp_dir to a larger disk)",
			outDir, name, free/mib, (need+mib-1)/mib)
	}
	return nil
}

// vacuumInto writes a consistent copy of the database src to dst (which
// must not exist or be empty) and returns the SQLite library version.
func vacuumInto(ctx context.Context, src, dst string) (version string, err error) {
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("remove stale %s: %w", dst, err)
	}
	// SQLite only says "unable to open database file": say why first.
	if f, err := os.Open(src); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return "", fmt.Errorf("permission denied: uid %d cannot read it (connect as a user that can read the databases, e.g. the app's user or root)", os.Geteuid())
		}
		return "", fmt.Errorf("open: %w", err)
	} else {
		f.Close()
	}
	db, err := openReadOnly(src)
	if err != nil {
		return "", err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	// Preparing the first statement reads the schema: the first read of src.
	if err := db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&version); err != nil {
		return "", fmt.Errorf("open read-only%s: %w", readOnlyHint(err), err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM INTO "+sqlString(dst)); err != nil {
		return "", fmt.Errorf("vacuum into %s: %w", dst, err)
	}
	return version, nil
}

// readOnlyHint explains the errors a read-only reader meets when the
// database needs recovery that only a writer may do.
func readOnlyHint(err error) string {
	var coded interface{ Code() int }
	if !errors.As(err, &coded) {
		return ""
	}
	switch coded.Code() {
	case sqliteReadonlyRollback:
		return " (it has a hot -journal to roll back: let the app open it once, then retry)"
	case sqliteReadonlyRecovery, sqliteReadonlyCantInit:
		return " (its WAL index needs recovery that a read-only reader cannot do: check the -shm permissions)"
	default:
		return ""
	}
}

// sqlString quotes s as an SQL string literal.
func sqlString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// hashAndCompress reads raw once, hashing it and writing it compressed to
// stored (hashed too). With no compression stored == raw and the pass
// only hashes. It fills f's sizes and hashes. started, if not nil, is
// called once stored exists and before any of it is written. The part of
// raw already compressed is released as the pass goes (a punched hole), so
// raw and stored together hold about one database's worth of disk.
func hashAndCompress(raw, stored, compression string, f *File, started func() error) (err error) {
	if stored == raw {
		in, err := os.Open(raw)
		if err != nil {
			return err
		}
		defer in.Close()
		rawHash := sha256.New()
		tee := io.TeeReader(in, rawHash)
		if f.Size, err = io.CopyBuffer(io.Discard, tee, make([]byte, copyBuffer)); err != nil {
			return fmt.Errorf("read %s: %w", raw, err)
		}
		f.SHA256 = hex.EncodeToString(rawHash.Sum(nil))
		f.StoredSize, f.StoredSHA256 = f.Size, f.SHA256
		return nil
	}
	in, err := os.OpenFile(raw, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	rawHash := sha256.New()
	tee := io.TeeReader(&releasingReader{f: in}, rawHash)
	out, err := os.OpenFile(stored, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	if started != nil {
		if err := started(); err != nil {
			return err
		}
	}
	storedHash := sha256.New()
	counted := &countWriter{w: io.MultiWriter(out, storedHash)}
	buf := bufio.NewWriterSize(counted, copyBuffer)
	enc, err := newCompressor(compression, buf)
	if err != nil {
		return err
	}
	if f.Size, err = io.CopyBuffer(enc, tee, make([]byte, copyBuffer)); err != nil {
		return fmt.Errorf("compress %s: %w", raw, err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("compress %s: %w", raw, err)
	}
	if err := buf.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", stored, err)
	}
	// No fsync: the file is a transient copy that the runner hashes byte
	// for byte, and a burst of syncs would stall the app's own WAL commits.
	f.SHA256 = hex.EncodeToString(rawHash.Sum(nil))
	f.StoredSize, f.StoredSHA256 = counted.n, hex.EncodeToString(storedHash.Sum(nil))
	return nil
}

// newCompressor returns a writer compressing into w; Close flushes it but
// does not close w. zstd runs on one goroutine to keep the host light.
func newCompressor(compression string, w io.Writer) (io.WriteCloser, error) {
	switch compression {
	case CompressionZstd:
		// A 2 MiB window, as zstd -3 uses: the runner's decoder keeps one
		// window of history, and the default 8 MiB showed in its peak RSS
		// without making the files smaller.
		e, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(2<<20))
		if err != nil {
			return nil, fmt.Errorf("zstd encoder: %w", err)
		}
		return e, nil
	case CompressionGzip:
		return gzip.NewWriter(w), nil
	default:
		return nil, fmt.Errorf("unknown compression %q", compression)
	}
}

// releaseEvery is how much of the raw snapshot is read before the part
// already read is handed back to the filesystem.
const releaseEvery = 16 * mib

// releasingReader reads f from the start and punches a hole over what it
// has read every releaseEvery bytes (FALLOC_FL_PUNCH_HOLE keeps the size),
// so the raw snapshot shrinks on disk as its compressed copy grows. A
// filesystem that cannot punch holes just keeps the blocks until f is
// removed.
type releasingReader struct {
	f        *os.File
	off      int64 // bytes read
	released int64 // bytes released
	disabled bool
}

func (r *releasingReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.off += int64(n)
	if !r.disabled && r.off-r.released >= releaseEvery {
		end := r.off &^ (mib - 1) // whole MiBs: every block size divides it
		if perr := unix.Fallocate(int(r.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, r.released, end-r.released); perr != nil {
			r.disabled = true // EOPNOTSUPP and the like: nothing is lost but space
		} else {
			r.released = end
		}
	}
	return n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// removeAll removes the named files, ignoring ones already gone.
func removeAll(paths ...string) error {
	var errs []error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("clean up: %w", err))
		}
	}
	return errors.Join(errs...)
}
