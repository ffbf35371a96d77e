package catalog

import (
	"strings"
	"testing"
)

// FuzzParseManifest: whatever the bucket holds, parsing never panics and
// an accepted manifest only names plain files.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format":1,"group_id":"20261125-020000","files":[{"name":"production.sqlite3","key":"db_backups/production/20261125-020000/production.sqlite3.zst"}]}`))
	f.Add([]byte(`{"format":1,"group_id":"20261125-020000","files":[{"name":"../evil","key":"x"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		for _, file := range m.Files {
			if ValidateName(file.Name) != nil || strings.Contains(file.Key, "..") || strings.HasPrefix(file.Key, "/") {
				t.Fatalf("accepted unsafe entry %+v", file)
			}
		}
	})
}

// FuzzSplit: a key either splits into a valid id and a plain name that
// rebuild the same key, or is not a group key.
func FuzzSplit(f *testing.F) {
	l := Layout{Prefix: "db_backups", Environment: "production"}
	f.Add("db_backups/production/20261125-020000/manifest.json")
	f.Add("db_backups/production/20261125-020000/a/b")
	f.Add("db_backups/production/2026112-020000/x")
	f.Add("db_backups/staging/20261125-020000/x")
	f.Fuzz(func(t *testing.T, key string) {
		id, name, ok := l.Split(key)
		if !ok {
			return
		}
		if _, err := ParseID(id); err != nil {
			t.Fatalf("split %q gave bad id %q", key, id)
		}
		if got := l.Key(id, name); got != key {
			t.Fatalf("split %q -> %q %q rebuilds %q", key, id, name, got)
		}
	})
}
