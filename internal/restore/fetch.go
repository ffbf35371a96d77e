package restore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// Fetched is one database downloaded into the runner's work dir and checked.
type Fetched struct {
	catalog.File        // as the manifest lists it (legacy: Name, Key, StoredSize)
	Path         string // the decompressed copy on the runner
	Bytes        int64  // its size
	Sum          string // its SHA-256 (equal to File.SHA256 when there is a manifest)
	Header       snapshot.Header
	Err          error // why it failed; nil when every check passed
}

// Fetch downloads every file of g into dir (which must be private to this
// run), decompresses it, checks the stored and the raw SHA-256 and sizes
// against the manifest, the header and PRAGMA integrity_check, and the page
// size and count against the manifest. A legacy group has no checksums, so
// its files get the header and integrity checks only (Fetch logs a warning).
// Every file is checked; the error joins the failures, each naming its file.
//
// An encrypted file (File.Encryption) is decrypted with ids on the way; an
// object whose encryption is not what the manifest says fails.
func Fetch(ctx context.Context, st store.Backend, g *Group, dir string, ids *encryption.Identities, log *slog.Logger) ([]Fetched, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if g.Legacy {
		log.Warn("legacy backup group (written before manifests existed): no checksums to check, restoring on PRAGMA integrity_check alone", "backup_id", g.ID)
	}
	out := make([]Fetched, 0, len(g.Files))
	var errs []error
	for _, f := range g.Files {
		fx := Fetched{File: f}
		fx.Err = fetchOne(ctx, st, g.Legacy, dir, ids, &fx)
		if fx.Err != nil {
			if ctx.Err() != nil {
				return nil, fx.Err
			}
			errs = append(errs, fx.Err)
			log.Error("check failed", "file", f.Name, "error", fx.Err)
		} else {
			log.Info("downloaded and checked", "file", f.Name, "bytes", fx.Bytes, "sha256", fx.Sum)
		}
		out = append(out, fx)
	}
	return out, errors.Join(errs...)
}

func fetchOne(ctx context.Context, st store.Backend, legacy bool, dir string, ids *encryption.Identities, fx *Fetched) error {
	if err := catalog.ValidateName(fx.Name); err != nil {
		return fmt.Errorf("%s: %w", fx.Name, err)
	}
	fx.Path = filepath.Join(dir, fx.Name)
	if err := download(ctx, st, legacy, ids, fx); err != nil {
		return fmt.Errorf("%s (%s): %w", fx.Name, fx.Key, err)
	}
	h, err := snapshot.CheckFile(ctx, fx.Path)
	if err != nil {
		return fmt.Errorf("%s: %w", fx.Name, err)
	}
	fx.Header = h
	if !legacy && (h.PageSize != fx.PageSize || h.PageCount != fx.PageCount) {
		return fmt.Errorf("%s: the database has %d pages of %d bytes, the manifest says %d of %d",
			fx.Name, h.PageCount, h.PageSize, fx.PageCount, fx.PageSize)
	}
	return nil
}

// download streams the object through its hash, the decryption (when the
// manifest says it is encrypted) and the decompressor into fx.Path, and
// checks sizes and hashes. The raw copy is cut off one byte past the
// manifest's size, so a forged object cannot fill the runner's disk.
func download(ctx context.Context, st store.Backend, legacy bool, ids *encryption.Identities, fx *Fetched) (err error) {
	rc, err := st.Get(ctx, fx.Key)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer rc.Close()
	out, err := os.OpenFile(fx.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("runner copy: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("runner copy: %w", cerr)
		}
	}()

	storedHash, rawHash := sha256.New(), sha256.New()
	stored := &countReader{r: io.TeeReader(rc, storedHash)}
	compressed, sealErr := open(stored, legacy, ids, fx)
	var n int64
	var copyErr error
	if sealErr == nil {
		var d io.ReadCloser
		if d, err = snapshot.Decompressor(fx.Compression, compressed); err != nil {
			return err
		}
		var raw io.Reader = d
		if !legacy {
			raw = io.LimitReader(d, fx.Size+1)
		}
		n, copyErr = io.Copy(io.MultiWriter(out, rawHash), raw)
		d.Close()
		if c, ok := compressed.(*countReader); ok {
			// Decrypt to the end: only then is the last chunk authenticated.
			if _, err := io.Copy(io.Discard, c); err != nil && c.err == nil {
				c.err = err
			}
			sealErr = c.err
		}
	}
	// Read the object to its end whatever happened, so that a damaged object
	// is reported by its checksum rather than by the decoder's complaint.
	if _, err := io.Copy(io.Discard, stored); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	fx.Bytes = n
	fx.Sum = hex.EncodeToString(rawHash.Sum(nil))
	storedSum := hex.EncodeToString(storedHash.Sum(nil))
	if legacy {
		if stored.n != fx.StoredSize {
			return fmt.Errorf("download: got %d bytes, the listing says %d", stored.n, fx.StoredSize)
		}
		fx.Size, fx.SHA256 = fx.Bytes, fx.Sum
		return errors.Join(sealErr, copyErr)
	}
	if stored.n != fx.StoredSize || storedSum != fx.StoredSHA256 {
		return fmt.Errorf("stored object does not match the manifest: got %d bytes sha256 %s, manifest says %d bytes sha256 %s",
			stored.n, storedSum, fx.StoredSize, fx.StoredSHA256)
	}
	if sealErr != nil {
		return sealErr
	}
	if c, ok := compressed.(*countReader); ok && fx.CompressedSHA256 != "" {
		if sum := hex.EncodeToString(c.h.Sum(nil)); c.n != fx.CompressedSize || sum != fx.CompressedSHA256 {
			return fmt.Errorf("decrypted object does not match the manifest: got %d bytes sha256 %s, manifest says %d bytes sha256 %s",
				c.n, sum, fx.CompressedSize, fx.CompressedSHA256)
		}
	}
	if copyErr != nil {
		return fmt.Errorf("decompress (%s): %w", fx.Compression, copyErr)
	}
	if n != fx.Size || fx.Sum != fx.SHA256 {
		return fmt.Errorf("database does not match the manifest: got %d bytes sha256 %s, manifest says %d bytes sha256 %s",
			n, fx.Sum, fx.Size, fx.SHA256)
	}
	return nil
}

// open returns the compressed bytes of the object read from stored: the
// object itself, or its plaintext (a *countReader that hashes it) when the
// manifest says it is encrypted. An object that is encrypted when the
// manifest says it is not, or the other way round, fails here.
func open(stored io.Reader, legacy bool, ids *encryption.Identities, fx *Fetched) (io.Reader, error) {
	if fx.Encryption == "" || legacy {
		br := bufio.NewReader(stored)
		head, _ := br.Peek(len(encryption.Magic))
		if encryption.IsEncrypted(head) {
			return nil, errors.New("the object is encrypted with age, but the manifest does not say so: refusing to use it")
		}
		return br, nil
	}
	if ids == nil {
		return nil, errors.New("the object is encrypted with age: input encryption_identity is not set")
	}
	plain, err := ids.Decrypt(stored)
	switch {
	case errors.Is(err, encryption.ErrNotEncrypted):
		return nil, errors.New("the manifest says the object is encrypted with age, but it is not an age file: refusing to use it")
	case errors.Is(err, encryption.ErrNoMatch):
		return nil, fmt.Errorf("input encryption_identity: does not decrypt the object (the identity is for %s)", encryption.Describe(ids.Recipients()))
	case err != nil:
		return nil, err
	}
	return &countReader{r: plain, h: sha256.New(), what: "decrypt"}, nil
}

// countReader counts (and, with h, hashes) what is read, and keeps the
// first error other than io.EOF, labelled with what.
type countReader struct {
	r    io.Reader
	n    int64
	h    hash.Hash
	what string
	err  error
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.h != nil {
		c.h.Write(p[:n])
	}
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
		if c.what != "" {
			c.err = fmt.Errorf("%s: %w", c.what, err)
		}
	}
	return n, err
}
