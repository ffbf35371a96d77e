package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/backup"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store/fsstore"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// ageKey is a fresh identity and its public key.
func ageKey(t *testing.T) (*encryption.Identities, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	ids, err := encryption.ParseIdentities(id.String())
	if err != nil {
		t.Fatal(err)
	}
	return ids, id.Recipient().String()
}

// newEncryptedFixture is newFixture with the group encrypted to two keys;
// it returns both identities.
func newEncryptedFixture(t *testing.T) (*fixture, [2]*encryption.Identities) {
	t.Helper()
	id1, pub1 := ageKey(t)
	id2, pub2 := ageKey(t)
	rs, err := encryption.ParseRecipients(pub1 + "\n" + pub2)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{live: t.TempDir()}
	testutil.MakeRailsStorage(t, f.live, 300, 64)
	if f.store, err = fsstore.New(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(context.Background(), backup.Options{
		Store: f.store, Layout: layout, Compression: "zstd", TempDir: t.TempDir(), Recipients: rs,
		Now: func() time.Time { return time.Date(2025, 1, 31, 2, 0, 0, 0, time.UTC) },
		Connect: func(context.Context) (backup.Source, error) {
			return snapshot.NewLocal(f.live, "*.sqlite3", "zstd", t.TempDir())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.id = res.ID
	f.m = f.manifest(t, f.id)
	return f, [2]*encryption.Identities{id1, id2}
}

// forgeAs writes a copy of group m as id, keys as the manifest has them,
// after change edited the manifest and the objects.
func (f *fixture) forgeAs(t *testing.T, m *catalog.Manifest, id string, change func(m *catalog.Manifest, objs map[string][]byte)) {
	t.Helper()
	c := *m
	c.GroupID = id
	c.Files = append([]catalog.File(nil), m.Files...)
	objs := map[string][]byte{}
	for i, file := range c.Files {
		objs[file.Name] = f.get(t, file.Key)
		c.Files[i].Key = layout.Key(id, filepath.Base(file.Key))
	}
	change(&c, objs)
	for _, file := range c.Files {
		f.put(t, file.Key, objs[file.Name])
	}
	body, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, layout.ManifestKey(id), body)
}

func TestEncryptedRoundTrip(t *testing.T) {
	f, ids := newEncryptedFixture(t)
	for i, id := range ids {
		dir := filepath.Join(t.TempDir(), "restore")
		o := f.opts(t, ModeLocal, dir)
		o.Identities = id
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatalf("identity %d: %v", i+1, err)
		}
		if len(res.Files) != len(f.m.Files) {
			t.Fatalf("identity %d: restored %d files, want %d", i+1, len(res.Files), len(f.m.Files))
		}
		for _, file := range f.m.Files {
			p := filepath.Join(dir, file.Name)
			if got := sha256File(t, p); got != file.SHA256 {
				t.Errorf("identity %d: %s sha256 %s, manifest %s", i+1, file.Name, got, file.SHA256)
			}
			if err := testutil.CheckInvariant(p); err != nil {
				t.Errorf("identity %d: %s: %v", i+1, file.Name, err)
			}
		}
	}
}

// TestEncryptionRefusals: every mismatch between keys, manifest and
// objects fails with a clear line, and nothing is written.
func TestEncryptionRefusals(t *testing.T) {
	f, ids := newEncryptedFixture(t)
	wrong, wrongPub := ageKey(t)
	plain := newFixture(t) // the same databases, not encrypted, in its own store
	cases := []struct {
		name       string
		fx         *fixture
		id         string // group; "" = the fixture's
		ids        *encryption.Identities
		forge      func(m *catalog.Manifest, objs map[string][]byte)
		want       string
		noDownload bool // refused before any object is read
	}{
		{name: "missing identity", fx: f, want: "input encryption_identity: backup 20250131-020000 is encrypted (recipients age1", noDownload: true},
		{name: "wrong identity", fx: f, ids: wrong, want: "input encryption_identity: does not decrypt backup 20250131-020000 (recipients age1", noDownload: true},
		{name: "manifest lists a recipient the objects are not sealed to", fx: f, id: "20250130-020000", ids: wrong,
			forge: func(m *catalog.Manifest, _ map[string][]byte) { m.Recipients = append(m.Recipients, wrongPub) },
			want:  "input encryption_identity: does not decrypt the object"},
		{name: "manifest says encrypted, object is not", fx: plain, id: "20250130-020000", ids: ids[0],
			forge: func(m *catalog.Manifest, _ map[string][]byte) {
				m.Recipients = ids[0].Recipients()
				for i := range m.Files {
					m.Files[i].Encryption = catalog.EncryptionAge
				}
			},
			want: "the manifest says the object is encrypted with age, but it is not an age file"},
		{name: "object is encrypted, manifest says not", fx: f, id: "20250130-020000", ids: ids[0],
			forge: func(m *catalog.Manifest, _ map[string][]byte) {
				m.Recipients = nil
				for i := range m.Files {
					m.Files[i].Encryption = ""
				}
			},
			want: "the object is encrypted with age, but the manifest does not say so"},
		{name: "ciphertext swapped between files", fx: f, id: "20250130-020000", ids: ids[1],
			forge: func(m *catalog.Manifest, objs map[string][]byte) {
				objs["production.sqlite3"], objs["production_cache.sqlite3"] = objs["production_cache.sqlite3"], objs["production.sqlite3"]
				for i, file := range m.Files {
					// A forger who rewrites the stored hashes too is caught by the rest.
					m.Files[i].StoredSHA256, m.Files[i].StoredSize = sha256Of(objs[file.Name]), int64(len(objs[file.Name]))
				}
			},
			want: "decrypted object does not match the manifest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.fx.id
			if tc.forge != nil {
				id = tc.id
				tc.fx.forgeAs(t, tc.fx.m, id, tc.forge)
			}
			dir := filepath.Join(t.TempDir(), "restore")
			o := tc.fx.opts(t, ModeLocal, dir)
			o.BackupID, o.Identities = id, tc.ids
			connected := false
			o.Connect = func(context.Context) (Target, error) { connected = true; return Local{}, nil }
			_, err := Run(context.Background(), o)
			t.Logf("error: %v", err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Count(err.Error(), "\n") > 0 && tc.noDownload {
				t.Errorf("not one line: %q", err)
			}
			if connected == tc.noDownload {
				t.Errorf("target contacted: %v, want %v", connected, !tc.noDownload)
			}
			if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
				t.Errorf("something was written to %s", dir)
			}
		})
	}
}

func sha256Of(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
