package prune

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// memStore is an in-memory Store that records Delete calls and can fail
// chosen keys or whole requests.
type memStore struct {
	objs       map[string][]byte
	extraList  []store.Object    // returned by List whatever the prefix (a misbehaving store)
	failKeys   map[string]string // key -> reason: Delete leaves it and reports it
	failCall   map[int]error     // Delete call number (0-based) -> request error, nothing deleted
	silentKeep map[string]bool   // Delete reports success but leaves the key
	deletes    [][]string        // every Delete call's keys
	gets       []string          // every Get
	listErr    error             // List fails with this
	getErr     map[string]error  // Get fails for this key
}

func newMemStore() *memStore {
	return &memStore{objs: map[string][]byte{}, failKeys: map[string]string{}, failCall: map[int]error{},
		silentKeep: map[string]bool{}, getErr: map[string]error{}}
}

func (m *memStore) String() string { return "mem://test" }

func (m *memStore) put(key string, body []byte) { m.objs[key] = body }

func (m *memStore) List(ctx context.Context, prefix string) ([]store.Object, error) {
	if m.listErr != nil {
		return nil, m.listErr
	}
	var out []store.Object
	for k, v := range m.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, store.Object{Key: k, Size: int64(len(v))})
		}
	}
	out = append(out, m.extraList...)
	slices.SortFunc(out, func(a, b store.Object) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (m *memStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	m.gets = append(m.gets, key)
	if err := m.getErr[key]; err != nil {
		return nil, err
	}
	b, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, store.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memStore) Delete(ctx context.Context, keys []string) error {
	call := len(m.deletes)
	m.deletes = append(m.deletes, slices.Clone(keys))
	if err := m.failCall[call]; err != nil {
		return err
	}
	failed := map[string]string{}
	for _, k := range keys {
		if r, ok := m.failKeys[k]; ok {
			failed[k] = r
			continue
		}
		if !m.silentKeep[k] {
			delete(m.objs, k)
		}
	}
	if len(failed) > 0 {
		return &store.DeleteError{Failed: failed}
	}
	return nil
}

func (m *memStore) keys() []string {
	var out []string
	for k := range m.objs {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (m *memStore) deleted() []string {
	var out []string
	for _, d := range m.deletes {
		out = append(out, d...)
	}
	slices.Sort(out)
	return out
}

var testLayout = catalog.Layout{Prefix: "db_backups", Environment: "production"}

// addGroup writes a group as the tool (complete, incomplete) or the old
// Rails service (legacy) would have: sizes are the original database
// sizes; the stored objects are a tenth of that (compressed).
func (m *memStore) addGroup(at time.Time, state catalog.State, sizes ...int64) string {
	id := catalog.NewID(at)
	names := []string{"production", "production_cache", "production_queue", "production_cable"}
	switch state {
	case catalog.StateLegacy:
		for i, n := range sizes {
			m.put(testLayout.Key(id, names[i%4]+".sqlite3"), make([]byte, n))
		}
		return id
	case catalog.StateIncomplete:
		m.put(testLayout.InProgressKey(id), []byte(`{"group_id":"`+id+`"}`))
	}
	mf := &catalog.Manifest{Format: catalog.ManifestFormat, Tool: "sqlite-backup-action", GroupID: id, CreatedAt: at, CompletedAt: at,
		Environment: testLayout.Environment}
	for i, n := range sizes {
		name := names[i%4] + ".sqlite3"
		key := testLayout.Key(id, name+".zst")
		m.put(key, make([]byte, n/10))
		mf.Files = append(mf.Files, catalog.File{Name: name, Size: n, Key: key, StoredSize: n / 10, Compression: "zstd"})
	}
	if state == catalog.StateComplete {
		body, err := mf.Encode()
		if err != nil {
			panic(err)
		}
		m.put(testLayout.ManifestKey(id), body)
	}
	return id
}

// groupKeys lists the keys of a group in the store (not nested ones).
func (m *memStore) groupKeys(id string) []string {
	var out []string
	for _, k := range m.keys() {
		if gid, _, ok := testLayout.Split(k); ok && gid == id {
			out = append(out, k)
		}
	}
	return out
}
