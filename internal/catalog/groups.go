package catalog

import (
	"slices"
	"strings"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// State says whether a group is a backup.
type State string

// The states of a group.
const (
	// StateComplete: the group has a manifest.json (written last).
	StateComplete State = "complete"
	// StateLegacy: written by the old Rails service: no manifest, no
	// in-progress marker, and raw *.sqlite3 objects. Counts as a backup.
	StateLegacy State = "legacy"
	// StateIncomplete: an in-progress marker, or anything else that is not
	// complete. Never a backup.
	StateIncomplete State = "incomplete"
)

// LegacyExt is the suffix of the raw database objects of a legacy group.
const LegacyExt = ".sqlite3"

// IsBackup reports whether a group in this state can be restored, and so
// counts toward keep_min and the retention tiers: complete and legacy.
func (s State) IsBackup() bool { return s == StateComplete || s == StateLegacy }

// Group is one backup group as found in a store listing.
type Group struct {
	ID      string
	Time    time.Time      // parsed from ID (UTC)
	State   State          // from the names of its objects
	Objects []store.Object // every object of the group, sorted by key
}

// Files is the number of data objects: every object but the manifest and
// the in-progress marker.
func (g Group) Files() int {
	n := 0
	for _, o := range g.Objects {
		if !isSpecial(o.Key) {
			n++
		}
	}
	return n
}

// StoredBytes is the total size of every object of the group.
func (g Group) StoredBytes() int64 {
	var n int64
	for _, o := range g.Objects {
		n += o.Size
	}
	return n
}

// LegacyBytes is the total size of the raw *.sqlite3 objects: the original
// size of a legacy group, which stored its databases uncompressed.
func (g Group) LegacyBytes() int64 {
	var n int64
	for _, o := range g.Objects {
		if strings.HasSuffix(o.Key, LegacyExt) {
			n += o.Size
		}
	}
	return n
}

// Keys lists the keys of every object of the group.
func (g Group) Keys() []string {
	keys := make([]string, len(g.Objects))
	for i, o := range g.Objects {
		keys[i] = o.Key
	}
	return keys
}

func isSpecial(key string) bool {
	return strings.HasSuffix(key, "/"+ManifestName) || strings.HasSuffix(key, "/"+InProgressName)
}

// Groups sorts a store listing into groups, newest first, and foreign
// objects: every key that is not <Root><id>/<name> with a valid id (keys
// outside Root, nested keys, unparsable ids), in listing order. Foreign
// objects belong to nobody here and must be left alone.
//
// A group is complete when it holds manifest.json (even if its marker is
// still there: the manifest is written last), incomplete when it holds the
// in-progress marker without a manifest, legacy when it holds neither but
// has at least one raw *.sqlite3 object, and incomplete otherwise.
func (l Layout) Groups(objs []store.Object) (groups []Group, foreign []store.Object) {
	byID := map[string]*Group{}
	for _, o := range objs {
		id, _, ok := l.Split(o.Key)
		if !ok {
			foreign = append(foreign, o)
			continue
		}
		g := byID[id]
		if g == nil {
			t, err := ParseID(id)
			if err != nil { // Split already parsed it
				foreign = append(foreign, o)
				continue
			}
			g = &Group{ID: id, Time: t}
			byID[id] = g
		}
		g.Objects = append(g.Objects, o)
	}
	for _, g := range byID {
		slices.SortFunc(g.Objects, func(a, b store.Object) int { return strings.Compare(a.Key, b.Key) })
		g.State = classify(g.Objects)
		groups = append(groups, *g)
	}
	slices.SortFunc(groups, func(a, b Group) int { return strings.Compare(b.ID, a.ID) })
	return groups, foreign
}

func classify(objs []store.Object) State {
	var manifest, marker, raw bool
	for _, o := range objs {
		name := o.Key[strings.LastIndex(o.Key, "/")+1:]
		switch {
		case name == ManifestName:
			manifest = true
		case name == InProgressName:
			marker = true
		case strings.HasSuffix(name, LegacyExt):
			raw = true
		}
	}
	switch {
	case manifest:
		return StateComplete
	case marker:
		return StateIncomplete
	case raw:
		return StateLegacy
	}
	return StateIncomplete
}
