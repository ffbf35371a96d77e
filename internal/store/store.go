// Package store defines where backup objects live. Implementations are in
// subpackages (s3store, fsstore); every one of them passes storetest.Run.
package store

import (
	"context"
	"errors"
	"io"
	"sort"
	"strconv"
	"time"
)

// ErrNotFound is returned (wrapped) by Get when the key does not exist.
var ErrNotFound = errors.New("not found")

// Object is one entry of a listing.
type Object struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// Backend is an object store holding backup groups. Keys are slash
// separated, never start with a slash and never contain "..".
//
// Contracts:
//   - Put writes the whole of r under key, replacing any object there. The
//     object becomes visible only once Put returns nil: a failed Put never
//     leaves a partial object under key. size is the number of bytes r will
//     yield, or -1 when unknown. Put is idempotent.
//   - Get returns the object's bytes; a missing key gives an error wrapping
//     ErrNotFound. The caller closes the reader.
//   - List returns every object whose key starts with prefix, sorted by key,
//     following pagination to the end. An empty result is not an error.
//   - Delete removes the keys; a key that does not exist is not an error.
//     Any key that could not be deleted makes Delete return an error naming
//     it (DeleteError lists them all). Delete is idempotent.
//   - Check proves the store is reachable and writable (fail fast on a wrong
//     bucket or bad credentials) and leaves nothing behind.
type Backend interface {
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	List(ctx context.Context, prefix string) ([]Object, error)
	Delete(ctx context.Context, keys []string) error
	Check(ctx context.Context) error
	// String describes the store for logs, e.g. "s3://bucket" or "file:///dir".
	String() string
}

// DeleteError reports the keys that Delete could not remove.
type DeleteError struct {
	Failed map[string]string // key -> reason
}

func (e *DeleteError) Error() string {
	keys := make([]string, 0, len(e.Failed))
	for k := range e.Failed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return "delete failed"
	}
	first := keys[0] + ": " + e.Failed[keys[0]]
	if len(keys) == 1 {
		return "delete failed for " + first
	}
	return "delete failed for " + strconv.Itoa(len(keys)) + " objects, first " + first
}

// Copier is a Backend that copies objects without downloading them
// (S3 CopyObject). Copy replaces any object at dst; a missing src wraps
// ErrNotFound.
type Copier interface {
	Copy(ctx context.Context, src, dst string) error
}

// Copy copies src to dst, server-side when b is a Copier, else by
// streaming it through this process.
func Copy(ctx context.Context, b Backend, src, dst string) error {
	if c, ok := b.(Copier); ok {
		return c.Copy(ctx, src, dst)
	}
	rc, err := b.Get(ctx, src)
	if err != nil {
		return err
	}
	defer rc.Close()
	return b.Put(ctx, dst, rc, -1)
}
