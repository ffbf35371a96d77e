package prune

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/retention"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// Lister is what List needs of a store.Backend.
type Lister interface {
	List(ctx context.Context, prefix string) ([]store.Object, error)
	String() string
}

// Listing is the list command's result; its JSON is the CLI's --json
// output (a stable contract: add fields, never rename them).
type Listing struct {
	Store   string          `json:"store"`
	Root    string          `json:"root"`
	Now     time.Time       `json:"now"`
	Groups  []ListedGroup   `json:"groups"`  // newest first
	Foreign []ForeignObject `json:"foreign"` // keys under root that are no group's
}

// ListedGroup is one group of a Listing.
type ListedGroup struct {
	ID          string        `json:"id"`
	Time        time.Time     `json:"time"`
	Age         string        `json:"age"` // e.g. "3d 4h"; negative when in the future
	AgeSeconds  int64         `json:"age_seconds"`
	State       catalog.State `json:"state"` // complete, legacy or incomplete
	Files       int           `json:"files"` // objects other than manifest and marker
	StoredBytes int64         `json:"stored_bytes"`
}

// ForeignObject is a key under root that does not belong to a group.
type ForeignObject struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
}

// List lists every group of the layout with its age at now.
func List(ctx context.Context, st Lister, l catalog.Layout, now time.Time) (*Listing, error) {
	objs, err := st.List(ctx, l.Root())
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", l.Root(), st, err)
	}
	groups, foreign := l.Groups(objs)
	return NewListing(st.String(), l.Root(), groups, foreign, now), nil
}

// NewListing builds a Listing from groups (newest first) and foreign objects.
func NewListing(storeName, root string, groups []catalog.Group, foreign []store.Object, now time.Time) *Listing {
	out := &Listing{Store: storeName, Root: root, Now: now.UTC(), Groups: []ListedGroup{}, Foreign: []ForeignObject{}}
	for _, g := range groups {
		out.Groups = append(out.Groups, listed(g, now))
	}
	for _, f := range foreign {
		out.Foreign = append(out.Foreign, ForeignObject{Key: f.Key, Size: f.Size})
	}
	return out
}

func listed(g catalog.Group, now time.Time) ListedGroup {
	age := now.Sub(g.Time)
	return ListedGroup{ID: g.ID, Time: g.Time.UTC(), Age: Age(age), AgeSeconds: int64(age / time.Second),
		State: g.State, Files: g.Files(), StoredBytes: g.StoredBytes()}
}

// JSON renders the listing as indented JSON with a final newline.
func (l *Listing) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode listing: %w", err)
	}
	return append(b, '\n'), nil
}

// Age renders a duration as days and hours, hours and minutes, or minutes:
// "3d 4h", "5h 12m", "42m", "-3m".
func Age(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	d = d.Truncate(time.Minute)
	days, h, m := d/retention.Day, d%retention.Day/time.Hour, d%time.Hour/time.Minute
	switch {
	case days > 0:
		return fmt.Sprintf("%s%dd %dh", sign, days, h)
	case h > 0:
		return fmt.Sprintf("%s%dh %dm", sign, h, m)
	}
	return fmt.Sprintf("%s%dm", sign, m)
}
