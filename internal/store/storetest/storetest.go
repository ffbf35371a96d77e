// Package storetest is the contract suite every store.Backend passes.
package storetest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// Options tunes the suite for a backend.
type Options struct {
	// SkipManyObjects skips the subtest that lists and deletes more than 1000
	// objects (one pagination page, one DeleteObjects batch).
	SkipManyObjects bool
	// Workers bounds the concurrent Puts that create many objects; default 16.
	Workers int
}

// largeSize is more than two 16 MiB parts, so S3 backends do a multipart upload.
const (
	largeSize   = 40 << 20
	manyObjects = 1100
	opTimeout   = 3 * time.Minute
)

var errReader = errors.New("storetest: reader failed on purpose")

// Run runs the contract suite with default options. newBackend must return a
// new, empty store for every call; subtests run in parallel.
func Run(t *testing.T, newBackend func(t *testing.T) store.Backend) {
	t.Helper()
	RunWith(t, Options{}, newBackend)
}

// RunWith runs the contract suite with opts.
func RunWith(t *testing.T, opts Options, newBackend func(t *testing.T) store.Backend) {
	t.Helper()
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	tests := []struct {
		name string
		skip bool
		run  func(t *testing.T, ctx context.Context, b store.Backend)
	}{
		{name: "PutGetRoundTrip", run: testRoundTrip},
		{name: "LargeStreamUnknownSize", run: testLarge},
		{name: "Overwrite", run: testOverwrite},
		{name: "GetMissing", run: testGetMissing},
		{name: "ListPrefix", run: testListPrefix},
		{name: "ManyObjects", skip: opts.SkipManyObjects, run: func(t *testing.T, ctx context.Context, b store.Backend) {
			testMany(t, ctx, b, opts.Workers)
		}},
		{name: "DeleteIdempotent", run: testDelete},
		{name: "FailedPutLeavesNothing", run: testFailedPut},
		{name: "CanceledContext", run: testCanceled},
		{name: "Check", run: testCheck},
		{name: "Copy", run: testCopy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("skipped by storetest.Options")
			}
			t.Parallel()
			b := newBackend(t)
			ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
			defer cancel()
			tt.run(t, ctx, b)
		})
	}
}

func testRoundTrip(t *testing.T, ctx context.Context, b store.Backend) {
	cases := []struct {
		name, key string
		data      []byte
		size      int64 // -2: use len(data)
	}{
		{"small known size", "g/db.sqlite.gz", []byte("hello, backup"), -2},
		{"small unknown size", "g/unknown", []byte("no size given"), -1},
		{"empty", "g/empty", nil, -2},
		{"deep key", "a/b/c/d/e/f.bin", bytes.Repeat([]byte{0, 1, 2, 255}, 1000), -2},
		{"odd characters", "odd/sp ace+plus%pct=eq&amp~tilde,ü.txt", []byte("odd"), -2},
	}
	for _, c := range cases {
		size := c.size
		if size == -2 {
			size = int64(len(c.data))
		}
		if err := b.Put(ctx, c.key, bytes.NewReader(c.data), size); err != nil {
			t.Fatalf("%s: Put(%q): %v", c.name, c.key, err)
		}
		if got := get(t, ctx, b, c.key); !bytes.Equal(got, c.data) {
			t.Errorf("%s: Get(%q) = %d bytes %q, want %d bytes", c.name, c.key, len(got), trunc(got), len(c.data))
		}
	}
	sizes := map[string]int64{}
	for _, c := range cases {
		sizes[c.key] = int64(len(c.data))
	}
	objs := list(t, ctx, b, "")
	if len(objs) != len(cases) {
		t.Fatalf("List(\"\") = %q, want %d objects", keys(objs), len(cases))
	}
	for _, o := range objs {
		want, ok := sizes[o.Key]
		switch {
		case !ok:
			t.Errorf("List returned unexpected key %q", o.Key)
		case o.Size != want:
			t.Errorf("List: %s size = %d, want %d", o.Key, o.Size, want)
		case o.LastModified.IsZero():
			t.Errorf("List: %s has zero LastModified", o.Key)
		}
	}
}

func testLarge(t *testing.T, ctx context.Context, b store.Backend) {
	const key = "big/stream.bin"
	src := newGenReader(1, largeSize)
	start := time.Now()
	if err := b.Put(ctx, key, src, -1); err != nil {
		t.Fatalf("Put(%q, 40 MiB, size -1): %v", key, err)
	}
	t.Logf("put 40 MiB of unknown size in %v", time.Since(start).Round(time.Millisecond))
	want := src.sum.Sum(nil)
	rc, err := b.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	if n != largeSize || !bytes.Equal(h.Sum(nil), want) {
		t.Fatalf("Get(%q) = %d bytes sha256 %x, want %d bytes sha256 %x", key, n, h.Sum(nil), largeSize, want)
	}
	if objs := list(t, ctx, b, "big/"); len(objs) != 1 || objs[0].Size != largeSize {
		t.Fatalf("List(big/) = %+v, want one object of %d bytes", objs, largeSize)
	}
}

func testOverwrite(t *testing.T, ctx context.Context, b store.Backend) {
	const key = "g/manifest.json"
	for _, v := range []string{"first version, the longer one", "second"} {
		put(t, ctx, b, key, v)
		if got := string(get(t, ctx, b, key)); got != v {
			t.Fatalf("after overwrite Get = %q, want %q", got, v)
		}
	}
	if objs := list(t, ctx, b, ""); len(objs) != 1 || objs[0].Size != int64(len("second")) {
		t.Fatalf("List after overwrite = %+v, want one object of 6 bytes", objs)
	}
}

func testGetMissing(t *testing.T, ctx context.Context, b store.Backend) {
	put(t, ctx, b, "dir/present", "x")
	for _, key := range []string{"absent", "dir/absent", "nodir/absent", "dir"} {
		rc, err := b.Get(ctx, key)
		if err == nil {
			rc.Close()
			t.Errorf("Get(%q) succeeded, want ErrNotFound", key)
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want one wrapping store.ErrNotFound", key, err)
		}
	}
}

func testListPrefix(t *testing.T, ctx context.Context, b store.Backend) {
	all := []string{"g1/x", "g1/y/z", "g10/x", "g2/x", "top"}
	for i, k := range slices.Backward(all) { // reverse order: the store must sort
		put(t, ctx, b, k, strings.Repeat("v", i+1))
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"g1", []string{"g1/x", "g1/y/z", "g10/x"}},
		{"g1/", []string{"g1/x", "g1/y/z"}},
		{"g1/y", []string{"g1/y/z"}},
		{"g1/x", []string{"g1/x"}},
		{"t", []string{"top"}},
		{"nope/", nil},
		{"g3", nil},
	}
	for _, c := range cases {
		if got := keys(list(t, ctx, b, c.prefix)); !slices.Equal(got, c.want) {
			t.Errorf("List(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
}

func testMany(t *testing.T, ctx context.Context, b store.Backend, workers int) {
	want := make([]string, manyObjects)
	for i := range want {
		want[i] = fmt.Sprintf("many/%04d", i)
	}
	put(t, ctx, b, "other/keep", "keep")
	start := time.Now()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan string)
	for range workers {
		wg.Go(func() {
			for k := range next {
				if err := b.Put(ctx, k, strings.NewReader(k), int64(len(k))); err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, k := range slices.Backward(want) {
		next <- k
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("Put: %v", firstErr)
	}
	t.Logf("put %d objects in %v", manyObjects, time.Since(start).Round(time.Millisecond))
	if got := keys(list(t, ctx, b, "many/")); !slices.Equal(got, want) {
		t.Fatalf("List(many/) = %d keys (first %q), want %d sorted keys", len(got), got[:min(3, len(got))], len(want))
	}
	for range 2 { // the second round proves Delete idempotent over many keys
		if err := b.Delete(ctx, want); err != nil {
			t.Fatalf("Delete(%d keys): %v", len(want), err)
		}
	}
	if got := keys(list(t, ctx, b, "")); !slices.Equal(got, []string{"other/keep"}) {
		t.Fatalf("List after Delete = %d keys (first %q), want [other/keep]", len(got), got[:min(3, len(got))])
	}
}

func testDelete(t *testing.T, ctx context.Context, b store.Backend) {
	put(t, ctx, b, "a/b/c", "1")
	put(t, ctx, b, "a/keep", "2")
	steps := []struct {
		name string
		keys []string
	}{
		{"existing and missing", []string{"a/b/c", "never/was"}},
		{"again", []string{"a/b/c"}},
		{"missing only", []string{"missing"}},
		{"a directory-like prefix", []string{"a", "a/b"}},
		{"empty list", nil},
	}
	for _, s := range steps {
		if err := b.Delete(ctx, s.keys); err != nil {
			t.Fatalf("Delete %s %q: %v", s.name, s.keys, err)
		}
	}
	if _, err := b.Get(ctx, "a/b/c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if got := keys(list(t, ctx, b, "")); !slices.Equal(got, []string{"a/keep"}) {
		t.Errorf("List after Delete = %q, want [a/keep]", got)
	}
}

func testFailedPut(t *testing.T, ctx context.Context, b store.Backend) {
	put(t, ctx, b, "f/previous", "old")
	cases := []struct {
		name, key string
		r         io.Reader
		size      int64
		wantErr   error // nil: any error
	}{
		{"small, unknown size", "f/small", failAfter(1<<20, 1), -1, errReader},
		{"multipart, unknown size", "f/big", failAfter(20<<20, 2), -1, errReader},
		{"known size", "f/known", failAfter(1<<20, 3), 2 << 20, errReader},
		{"short body", "f/short", strings.NewReader("12345"), 10, nil},
		{"long body", "f/long", strings.NewReader("1234567890"), 5, nil},
		{"over an existing object", "f/previous", failAfter(1<<20, 4), -1, errReader},
	}
	for _, c := range cases {
		err := b.Put(ctx, c.key, c.r, c.size)
		if err == nil {
			t.Errorf("%s: Put succeeded, want an error", c.name)
		} else if c.wantErr != nil && !errors.Is(err, c.wantErr) {
			t.Errorf("%s: Put error = %v, want one wrapping %v", c.name, err, c.wantErr)
		}
	}
	if got := keys(list(t, ctx, b, "")); !slices.Equal(got, []string{"f/previous"}) {
		t.Errorf("List after failed Puts = %q, want [f/previous]", got)
	}
	if got := string(get(t, ctx, b, "f/previous")); got != "old" {
		t.Errorf("failed overwrite changed the object to %q", trunc([]byte(got)))
	}
}

func testCanceled(t *testing.T, ctx context.Context, b store.Backend) {
	put(t, ctx, b, "c/x", "x")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	ops := []struct {
		name string
		call func() error
	}{
		{"Put", func() error { return b.Put(cctx, "c/new", strings.NewReader("y"), 1) }},
		{"Get", func() error {
			rc, err := b.Get(cctx, "c/x")
			if err == nil {
				_, err = io.ReadAll(rc)
				rc.Close()
			}
			return err
		}},
		{"List", func() error { _, err := b.List(cctx, ""); return err }},
		{"Delete", func() error { return b.Delete(cctx, []string{"c/x"}) }},
		{"Check", func() error { return b.Check(cctx) }},
	}
	for _, op := range ops {
		if err := op.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: err = %v, want context.Canceled", op.name, err)
		}
	}
	if got := keys(list(t, ctx, b, "")); !slices.Equal(got, []string{"c/x"}) {
		t.Errorf("List after canceled calls = %q, want [c/x]", got)
	}
}

func testCheck(t *testing.T, ctx context.Context, b store.Backend) {
	for range 2 {
		if err := b.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	if got := list(t, ctx, b, ""); len(got) != 0 {
		t.Fatalf("Check left objects behind: %q", keys(got))
	}
	if s := b.String(); s == "" {
		t.Errorf("String() is empty")
	}
}

// testCopy: store.Copy (server-side where the backend can) gives an
// identical object, replaces dst, and a missing source wraps ErrNotFound.
func testCopy(t *testing.T, ctx context.Context, b store.Backend) {
	put(t, ctx, b, "g1/db.zst", "snapshot bytes")
	put(t, ctx, b, "g2/db.zst", "to be replaced")
	if err := store.Copy(ctx, b, "g1/db.zst", "g2/db.zst"); err != nil {
		t.Fatalf("copy: %v", err)
	}
	if got := string(get(t, ctx, b, "g2/db.zst")); got != "snapshot bytes" {
		t.Errorf("copied object holds %q", got)
	}
	if got := string(get(t, ctx, b, "g1/db.zst")); got != "snapshot bytes" {
		t.Errorf("source changed to %q", got)
	}
	if err := store.Copy(ctx, b, "g1/missing", "g3/x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("copy of a missing key: got %v, want ErrNotFound", err)
	}
}

func put(t *testing.T, ctx context.Context, b store.Backend, key, val string) {
	t.Helper()
	if err := b.Put(ctx, key, strings.NewReader(val), int64(len(val))); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func get(t *testing.T, ctx context.Context, b store.Backend, key string) []byte {
	t.Helper()
	rc, err := b.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return data
}

func list(t *testing.T, ctx context.Context, b store.Backend, prefix string) []store.Object {
	t.Helper()
	objs, err := b.List(ctx, prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	if !slices.IsSortedFunc(objs, func(a, b store.Object) int { return strings.Compare(a.Key, b.Key) }) {
		t.Fatalf("List(%q) is not sorted by key: %q", prefix, keys(objs))
	}
	return objs
}

func keys(objs []store.Object) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.Key)
	}
	return ks
}

func trunc(b []byte) []byte { return b[:min(len(b), 32)] }

// genReader yields n deterministic pseudo-random bytes and hashes them as
// they go, so a large object never sits in memory.
type genReader struct {
	rng  *rand.ChaCha8
	left int64
	sum  interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func newGenReader(seed byte, n int64) *genReader {
	return &genReader{rng: rand.NewChaCha8([32]byte{seed}), left: n, sum: sha256.New()}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.left)]
	_, _ = g.rng.Read(p)
	_, _ = g.sum.Write(p)
	g.left -= int64(len(p))
	return len(p), nil
}

// failAfter yields n bytes, then errReader.
func failAfter(n int64, seed byte) io.Reader {
	return io.MultiReader(io.LimitReader(newGenReader(seed, n), n), errorReader{})
}

type errorReader struct{}

func (errorReader) Read([]byte) (int, error) { return 0, errReader }
