package verify

import (
	"context"
	"os"
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

func TestVerifyEncrypted(t *testing.T) {
	var ids []*encryption.Identities
	var pubs []string
	for range 3 {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := encryption.ParseIdentities(id.String())
		if err != nil {
			t.Fatal(err)
		}
		ids, pubs = append(ids, parsed), append(pubs, id.Recipient().String())
	}
	rs, err := encryption.ParseRecipients(pubs[0] + " " + pubs[1]) // the third key is not one of them
	if err != nil {
		t.Fatal(err)
	}
	live := t.TempDir()
	testutil.MakeRailsStorage(t, live, rows, 32)
	st, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(context.Background(), backup.Options{
		Store: st, Layout: layout, Compression: "zstd", TempDir: t.TempDir(), Recipients: rs,
		Now: func() time.Time { return created },
		Connect: func(context.Context) (backup.Source, error) {
			return snapshot.NewLocal(live, "*.sqlite3", "zstd", t.TempDir())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := catalog.ParseManifest(get(t, st, res.ManifestKey))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		ids  *encryption.Identities
		want string // "" = passes
	}{
		{name: "first identity", ids: ids[0]},
		{name: "second identity", ids: ids[1]},
		{name: "wrong identity", ids: ids[2], want: "input encryption_identity: does not decrypt backup 20250131-020000 (recipients " + encryption.Describe(rs.Strings())},
		{name: "no identity", want: "input encryption_identity: backup 20250131-020000 is encrypted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			r, err := Run(context.Background(), Options{Store: st, Layout: layout, BackupID: "latest", Identities: tc.ids,
				TempDir: work, Now: func() time.Time { return created.Add(time.Hour) }})
			if r == nil {
				t.Fatalf("no report: %v", err)
			}
			if tc.want == "" {
				if err != nil || !r.OK() {
					t.Fatalf("got %v, want a pass", err)
				}
				checkReport(t, r, m)
				return
			}
			if err == nil || r.OK() || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line saying %q", err, tc.want)
			}
			if left, _ := os.ReadDir(work); len(left) != 0 {
				t.Errorf("the drill left %d entries in its work dir", len(left))
			}
		})
	}
}
