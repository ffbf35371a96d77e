package prune

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/humanize"
)

// Action is what happened to a group in this run: keep, deleted, would
// delete (dry run), or not deleted (shrink guard, or an error).
func (r *Result) Action(d Decision) string {
	switch {
	case d.Keep:
		return "keep"
	case r.Shrink != nil:
		return "not deleted (shrink guard)"
	case r.DryRun:
		return "would delete"
	case slices.Contains(r.Deleted, d.Group.ID):
		return "deleted"
	case !r.Locked[d.Group.ID].IsZero():
		return "locked until " + r.Locked[d.Group.ID].UTC().Format(lockTimeLayout)
	}
	return "not deleted (error)"
}

// Counts returns how many groups were kept, deleted, and planned for
// deletion but left (dry run, shrink guard or error).
func (r *Result) Counts() (kept, deleted, left int) {
	for _, d := range r.Decisions {
		switch {
		case d.Keep:
			kept++
		case r.Action(d) == "deleted":
			deleted++
		default:
			left++
		}
	}
	return kept, deleted, left
}

func (r *Result) headline() string {
	kept, deleted, left := r.Counts()
	s := fmt.Sprintf("%d kept, %d deleted", kept, deleted)
	switch {
	case r.DryRun && left > 0:
		s += fmt.Sprintf(", %d would be deleted (dry run)", left)
	case r.DryRun:
		s += " (dry run)"
	case left > len(r.Locked):
		s += fmt.Sprintf(", %d not deleted", left-len(r.Locked))
	}
	if n := len(r.Locked); n > 0 {
		s += fmt.Sprintf(", %d locked (Object Lock)", n)
	}
	if n := len(r.Foreign); n > 0 {
		s += fmt.Sprintf(", %d foreign objects left alone", n)
	}
	return s
}

// Text is the plain table prune prints on stdout.
func (r *Result) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "prune %s in %s (%s)\n", r.Root, r.Store, r.Policy)
	w := 26 // the decision column; wider for "locked until <date>"
	for _, d := range r.Decisions {
		w = max(w, len(r.Action(d)))
	}
	fmt.Fprintf(&b, "%-17s %-9s %-10s %5s %12s  %-*s %s\n", "GROUP", "AGE", "STATE", "FILES", "STORED", w, "DECISION", "REASON")
	for _, d := range r.Decisions {
		g := d.Group
		fmt.Fprintf(&b, "%-17s %-9s %-10s %5d %12s  %-*s %s\n", g.ID, Age(r.Now.Sub(g.Time)), g.State, g.Files(),
			humanize.Bytes(g.StoredBytes()), w, r.Action(d), d.Reason)
	}
	if r.Shrink != nil {
		fmt.Fprintf(&b, "warning: %s\n", r.Shrink)
	}
	writeForeignText(&b, r.foreignObjects())
	fmt.Fprintln(&b, r.headline())
	return b.String()
}

// Markdown is the job summary: every group with its decision and reason.
func (r *Result) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Prune `%s` in `%s`\n\nPolicy: %s · %s\n\n", r.Root, r.Store, r.Policy, r.headline())
	if r.Shrink != nil {
		fmt.Fprintf(&b, "> [!WARNING]\n> %s\n\n", r.Shrink)
	}
	b.WriteString("| Group | Age | State | Files | Stored | Decision | Reason |\n|---|---:|---|---:|---:|---|---|\n")
	for _, d := range r.Decisions {
		g := d.Group
		fmt.Fprintf(&b, "| `%s` | %s | %s | %d | %s | %s | %s |\n", g.ID, Age(r.Now.Sub(g.Time)), g.State, g.Files(),
			humanize.Bytes(g.StoredBytes()), r.Action(d), d.Reason)
	}
	writeForeignMarkdown(&b, r.foreignObjects())
	return b.String()
}

// foreignObjects is the plan's foreign objects in the Listing's shape.
func (r *Result) foreignObjects() []ForeignObject {
	out := make([]ForeignObject, len(r.Foreign))
	for i, f := range r.Foreign {
		out[i] = ForeignObject{Key: f.Key, Size: f.Size}
	}
	return out
}

// Text is the plain table list prints on stdout.
func (l *Listing) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s in %s: %d groups\n", l.Root, l.Store, len(l.Groups))
	fmt.Fprintf(&b, "%-17s %-9s %-10s %5s %12s\n", "GROUP", "AGE", "STATE", "FILES", "STORED")
	for _, g := range l.Groups {
		fmt.Fprintf(&b, "%-17s %-9s %-10s %5d %12s\n", g.ID, g.Age, g.State, g.Files, humanize.Bytes(g.StoredBytes))
	}
	writeForeignText(&b, l.Foreign)
	return b.String()
}

// Markdown is the list command's job summary.
func (l *Listing) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Backup groups in `%s` of `%s`\n\n%d groups\n\n", l.Root, l.Store, len(l.Groups))
	b.WriteString("| Group | Age | State | Files | Stored |\n|---|---:|---|---:|---:|\n")
	for _, g := range l.Groups {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %d | %s |\n", g.ID, g.Age, g.State, g.Files, humanize.Bytes(g.StoredBytes))
	}
	writeForeignMarkdown(&b, l.Foreign)
	return b.String()
}

func writeForeignText(b *strings.Builder, foreign []ForeignObject) {
	if len(foreign) == 0 {
		return
	}
	fmt.Fprintf(b, "foreign objects under the root, left alone: %d\n", len(foreign))
	for _, f := range foreign {
		fmt.Fprintf(b, "  %s (%s)\n", f.Key, humanize.Bytes(f.Size))
	}
}

func writeForeignMarkdown(b *strings.Builder, foreign []ForeignObject) {
	if len(foreign) == 0 {
		return
	}
	fmt.Fprintf(b, "\nForeign objects under the root (not a group; left alone): %d\n\n", len(foreign))
	for _, f := range foreign {
		fmt.Fprintf(b, "- `%s` (%s)\n", strings.ReplaceAll(f.Key, "`", "'"), humanize.Bytes(f.Size))
	}
}
