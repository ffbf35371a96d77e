package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
)

// transfer streams one compressed snapshot from the host into the store
// (encrypted on the way when Recipients is set: the host never sees a key)
// and, in the same pass, decompresses it into a runner temp file, then
// checks both hashes, the header and PRAGMA integrity_check there, so the
// production host is never loaded with the check. Memory stays bounded:
// nothing holds a whole database.
//
// It returns once the bytes are stored and both hashes match; the returned
// check runs the header and integrity checks on the runner's copy (and
// removes it), so the caller can overlap it with the next transfer. The
// FileResult (Duration: the transfer's) is valid only once check returned nil.
func (o Options) transfer(ctx context.Context, src Source, f snapshot.File, key string) (_ *FileResult, check func(context.Context) error, err error) {
	start := time.Now()
	file, err := src.Open(ctx, f.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("open snapshot on host: %w", err)
	}
	defer file.Close()
	rc := io.Reader(file)
	var grown *follower
	if f.Growing {
		// The helper is still compressing: read it as it grows, to the
		// size its finished report gives.
		ra, ok := file.(io.ReaderAt)
		if !ok {
			return nil, nil, fmt.Errorf("open snapshot on host: %T cannot be read while it grows", file)
		}
		grown = follow(ctx, ra, f.Final)
		defer grown.Close()
		rc = grown
	}

	tmp, err := os.CreateTemp(o.TempDir, "sba-verify-*.sqlite3")
	if err != nil {
		return nil, nil, fmt.Errorf("runner temp file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	upR, upW := io.Pipe()
	dcR, dcW := io.Pipe()
	size := f.StoredSize
	if o.Recipients != nil {
		size = o.Recipients.EncryptedSize(f.StoredSize)
	}
	if grown != nil {
		size = -1 // not known until the helper finishes
	}
	upDone := make(chan error, 1)
	go func() {
		err := o.Store.Put(ctx, key, upR, size)
		upR.CloseWithError(stopped(err))
		upDone <- err
	}()
	rawHash := sha256.New()
	var rawN int64
	dcDone := make(chan error, 1)
	go func() {
		err := decompressTo(f.Compression, dcR, io.MultiWriter(tmp, rawHash), &rawN)
		dcR.CloseWithError(stopped(err))
		dcDone <- err
	}()

	// hostHash is of the bytes the host sent (what it hashed); with
	// encryption, sealedHash is of the ciphertext that is uploaded.
	hostHash, sealedHash := sha256.New(), sha256.New()
	counter, sealedN := &counter{}, &counter{}
	upload := io.Writer(upW)
	var enc io.WriteCloser
	if o.Recipients != nil {
		// age writes its header at once: the upload goroutine is reading.
		if enc, err = o.Recipients.Encrypt(io.MultiWriter(sealedHash, sealedN, upW)); err != nil {
			upW.CloseWithError(stopped(err))
			dcW.CloseWithError(stopped(err))
			<-dcDone
			if upErr := <-upDone; upErr != nil && !errors.Is(upErr, errStopped) {
				return nil, nil, fmt.Errorf("upload %s: %w", key, upErr) // the root cause
			}
			return nil, nil, err
		}
		upload = enc
	}
	stopProgress := o.progress(f.Name, f.StoredSize, counter)
	_, copyErr := io.Copy(io.MultiWriter(hostHash, counter, upload, dcW), rc)
	stopProgress()
	var encErr error // the last chunk is sealed and written on Close
	if enc != nil && copyErr == nil {
		encErr = enc.Close()
	}
	var peerErr error // what the upload and verify stages read after the last byte
	if err := errors.Join(copyErr, encErr); err != nil {
		peerErr = stopped(err)
	}
	upW.CloseWithError(peerErr)
	dcW.CloseWithError(peerErr)
	upErr := <-upDone
	dcErr := <-dcDone
	// Report the stage that failed first; the others only stopped.
	for _, e := range []struct {
		err  error
		what string
	}{
		{upErr, ""}, // the store's errors already say "upload <key>"
		{copyErr, "read snapshot from host"},
		{encErr, "encrypt"},
		{dcErr, "decompress for verification"},
	} {
		if e.err != nil && !errors.Is(e.err, errStopped) {
			if e.what == "" {
				return nil, nil, e.err
			}
			return nil, nil, fmt.Errorf("%s: %w", e.what, e.err)
		}
	}
	if upErr != nil || copyErr != nil || encErr != nil || dcErr != nil {
		return nil, nil, fmt.Errorf("transfer %s: %w", key, errors.Join(upErr, copyErr, encErr, dcErr))
	}
	if err := tmp.Close(); err != nil {
		return nil, nil, fmt.Errorf("runner temp file: %w", err)
	}
	if grown != nil {
		fin := grown.Final()
		if fin.Name != f.Name || fin.Path != f.Path || fin.Compression != f.Compression {
			return nil, nil, fmt.Errorf("helper finished %s (%s) while %s (%s) was being read", fin.Name, fin.Path, f.Name, f.Path)
		}
		f = fin
		if o.Recipients != nil {
			size = o.Recipients.EncryptedSize(f.StoredSize)
		}
	}
	what := "stored file"
	if enc != nil {
		what = "compressed file"
	}
	if err := checkSum(what, counter.n.Load(), hostHash, f.StoredSize, f.StoredSHA256); err != nil {
		return nil, nil, err
	}
	if err := checkSum("snapshot", rawN, rawHash, f.Size, f.SHA256); err != nil {
		return nil, nil, err
	}
	fr := &FileResult{
		File: catalog.File{
			Name: f.Name, Size: f.Size, SHA256: f.SHA256, Key: key,
			StoredSize: f.StoredSize, StoredSHA256: f.StoredSHA256, Compression: f.Compression,
			PageSize: f.PageSize, PageCount: f.PageCount, SQLiteVersion: f.SQLiteVersion,
			IntegrityCheck: "ok",
		},
	}
	if enc != nil {
		if n := sealedN.n.Load(); n != size {
			return nil, nil, fmt.Errorf("encrypt: wrote %d bytes, want %d", n, size)
		}
		fr.Encryption = catalog.EncryptionAge
		fr.CompressedSize, fr.CompressedSHA256 = f.StoredSize, f.StoredSHA256
		fr.StoredSize, fr.StoredSHA256 = size, hex.EncodeToString(sealedHash.Sum(nil))
	}
	check = func(ctx context.Context) error {
		defer os.Remove(tmp.Name())
		h, err := snapshot.CheckFile(ctx, tmp.Name())
		if err != nil {
			return fmt.Errorf("verify snapshot on runner: %w", err)
		}
		if h.PageSize != f.PageSize || h.PageCount != f.PageCount {
			return fmt.Errorf("verify snapshot on runner: header says %d pages of %d bytes, host reported %d of %d", h.PageCount, h.PageSize, f.PageCount, f.PageSize)
		}
		return nil
	}
	fr.Duration = time.Since(start)
	o.Log.Info("stored", "file", f.Name, "key", key, "bytes", fr.StoredSize, "host_snapshot_ms", f.SnapshotMS,
		"host_compress_ms", f.CompressMS, "transfer_ms", fr.Duration.Milliseconds())
	return fr, check, nil
}

func decompressTo(compression string, r io.Reader, w io.Writer, n *int64) error {
	d, err := snapshot.Decompressor(compression, r)
	if err != nil {
		return err
	}
	defer d.Close()
	*n, err = io.Copy(w, d)
	if err != nil {
		return err
	}
	// Drain what the decompressor did not need, so the writer side never blocks.
	_, err = io.Copy(io.Discard, r)
	return err
}

func checkSum(what string, n int64, h hash.Hash, wantN int64, want string) error {
	got := hex.EncodeToString(h.Sum(nil))
	if n != wantN || got != want {
		return fmt.Errorf("%s changed in transit: got %d bytes sha256 %s, host reported %d bytes sha256 %s", what, n, got, wantN, want)
	}
	return nil
}

// errStopped marks a pipeline stage that stopped because another failed.
var errStopped = errors.New("stopped")

// stopped is what a failed (or finished) stage hands to its peers: the
// root cause, marked so that peers' errors are not taken for it.
func stopped(err error) error {
	if err == nil || errors.Is(err, errStopped) {
		return errOr(err, fmt.Errorf("%w: pipe closed early", errStopped))
	}
	return &stageError{err}
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

type stageError struct{ err error }

func (e *stageError) Error() string        { return e.err.Error() }
func (e *stageError) Is(target error) bool { return target == errStopped }
func (e *stageError) Unwrap() error        { return e.err }

type counter struct{ n atomic.Int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// progress logs bytes and rate every ProgressEvery until stopped; total
// is 0 while it is not known.
func (o Options) progress(name string, total int64, c *counter) (stop func()) {
	done := make(chan struct{})
	start := time.Now()
	go func() {
		t := time.NewTicker(o.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n := c.n.Load()
				rate := float64(n) / time.Since(start).Seconds() / (1 << 20)
				if total > 0 {
					o.Log.Info("transfer", "file", name, "bytes", n, "of", total, "mib_per_s", fmt.Sprintf("%.1f", rate))
				} else { // still being compressed on the host: the total is not known yet
					o.Log.Info("transfer", "file", name, "bytes", n, "mib_per_s", fmt.Sprintf("%.1f", rate))
				}
			}
		}
	}()
	return func() { close(done) }
}
