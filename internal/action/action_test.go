package action_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/action"
)

func newAction(t *testing.T) (*action.Action, string) {
	t.Helper()
	summary := filepath.Join(t.TempDir(), "step_summary")
	env := map[string]string{"GITHUB_STEP_SUMMARY": summary}
	return action.New(func(k string) string { return env[k] }, &bytes.Buffer{}), summary
}

func readSummary(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// table makes a markdown table of about n bytes with multi-byte text, so
// a cut in the wrong place would break a character.
func table(n int) string {
	var b strings.Builder
	b.WriteString("| group | état |\n|---|---|\n")
	for b.Len() < n {
		b.WriteString("| 20250101-020000 | vérifié ✓ |\n")
	}
	return b.String()
}

func TestSummaryUnderTheLimitIsWrittenAsIs(t *testing.T) {
	a, p := newAction(t)
	md := table(10 << 10)
	if err := a.Summary(md); err != nil {
		t.Fatal(err)
	}
	if got := readSummary(t, p); got != md+"\n" {
		t.Errorf("summary changed: %d bytes written, %d given", len(got), len(md))
	}
}

func TestSummaryTruncatedPastTheLimit(t *testing.T) {
	a, p := newAction(t)
	md := table(3 << 20)
	if err := a.Summary(md); err != nil {
		t.Fatal(err)
	}
	if err := a.Summary("| a later summary |"); err != nil {
		t.Fatal(err)
	}
	got := readSummary(t, p)
	if len(got) > action.MaxSummaryBytes || len(got) < action.MaxSummaryBytes-4<<10 {
		t.Errorf("summary is %d bytes, want just under %d", len(got), action.MaxSummaryBytes)
	}
	if !utf8.ValidString(got) {
		t.Errorf("truncation broke a character")
	}
	body, note, ok := strings.Cut(got, "\n\n> **Summary truncated**: ")
	if !ok || !strings.HasSuffix(note, "The job log has everything.\n") {
		t.Fatalf("no truncation note at the end:\n%s", got[max(0, len(got)-300):])
	}
	if !strings.HasPrefix(md, body+"\n") {
		t.Errorf("the kept part is not whole lines of the summary")
	}
	if strings.Contains(got, "a later summary") {
		t.Errorf("a summary after the truncation was written")
	}
}

func TestSummaryBudgetSpansCalls(t *testing.T) {
	a, p := newAction(t)
	for range 3 {
		if err := a.Summary(table(400 << 10)); err != nil {
			t.Fatal(err)
		}
	}
	got := readSummary(t, p)
	if len(got) > action.MaxSummaryBytes || !strings.Contains(got, "Summary truncated") {
		t.Errorf("three 400 KiB summaries wrote %d bytes (limit %d), truncated: %v",
			len(got), action.MaxSummaryBytes, strings.Contains(got, "Summary truncated"))
	}
}

func TestSummaryOneLongLine(t *testing.T) {
	a, p := newAction(t)
	if err := a.Summary(strings.Repeat("é", 1<<20)); err != nil {
		t.Fatal(err)
	}
	got := readSummary(t, p)
	if len(got) > action.MaxSummaryBytes || !utf8.ValidString(got) || !strings.Contains(got, "Summary truncated") {
		t.Errorf("%d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}

func TestSummaryWithoutStepSummaryFile(t *testing.T) {
	a := action.New(func(string) string { return "" }, &bytes.Buffer{})
	if err := a.Summary("x"); err != nil {
		t.Errorf("no GITHUB_STEP_SUMMARY: %v, want nothing done", err)
	}
}
