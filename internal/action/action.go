// Package action is the only importer of go-githubactions: it reads
// inputs, masks secrets, writes outputs, log groups, errors and the job
// summary. Nothing here reads the real environment: getenv and the writer
// are injected.
package action

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/sethvargo/go-githubactions"
)

// MaxSummaryBytes bounds what one run appends to the job summary. The
// runner refuses a step summary over 1 MiB and then shows none of it, so
// the guard keeps well clear of that.
const MaxSummaryBytes = 900 << 10

// Action talks to the GitHub Actions runner.
type Action struct {
	gha    *githubactions.Action
	getenv func(string) string

	summaryBytes     int  // appended to GITHUB_STEP_SUMMARY so far
	summaryTruncated bool // the budget ran out: later summaries are dropped
}

// New builds an Action on an injected environment and stdout.
func New(getenv func(string) string, stdout io.Writer) *Action {
	return &Action{
		gha:    githubactions.New(githubactions.WithGetenv(getenv), githubactions.WithWriter(stdout)),
		getenv: getenv,
	}
}

// Input returns the value of INPUT_<NAME>; an empty value counts as not
// given (the runner sets every declared input, empty when not given).
func (a *Action) Input(name string) (string, bool) {
	v := a.gha.GetInput(name)
	return v, v != ""
}

// Mask tells the runner to hide a secret in all later log output. A
// multi-line secret (a private key) is masked line by line as well.
func (a *Action) Mask(secret string) {
	if strings.TrimSpace(secret) == "" {
		return
	}
	a.gha.AddMask(secret)
	if strings.Contains(secret, "\n") {
		for _, line := range strings.Split(secret, "\n") {
			if line = strings.TrimSpace(line); len(line) >= 4 {
				a.gha.AddMask(line)
			}
		}
	}
}

// Group starts a collapsible log group; EndGroup ends it.
func (a *Action) Group(title string) { a.gha.Group(title) }

// EndGroup ends the current log group.
func (a *Action) EndGroup() { a.gha.EndGroup() }

// Error shows an error annotation.
func (a *Action) Error(msg string) { a.gha.Errorf("%s", msg) }

// Warning shows a warning annotation.
func (a *Action) Warning(msg string) { a.gha.Warningf("%s", msg) }

// SetOutputs writes step outputs to GITHUB_OUTPUT.
func (a *Action) SetOutputs(kv [][2]string) (err error) {
	if a.getenv("GITHUB_OUTPUT") == "" {
		return fmt.Errorf("set outputs: GITHUB_OUTPUT is not set")
	}
	defer recoverInto(&err, "set outputs")
	for _, p := range kv {
		a.gha.SetOutput(p[0], p[1])
	}
	return nil
}

// Summary appends markdown to the job summary (GITHUB_STEP_SUMMARY).
// Past MaxSummaryBytes in all, the markdown is cut at a line boundary and
// ends with a note saying so; after that, summaries are dropped.
func (a *Action) Summary(markdown string) (err error) {
	if a.getenv("GITHUB_STEP_SUMMARY") == "" || a.summaryTruncated {
		return nil
	}
	markdown = a.fitSummary(markdown)
	defer recoverInto(&err, "write job summary")
	a.gha.AddStepSummary(markdown)
	a.summaryBytes += len(markdown) + 1 // the library ends each with a newline
	return nil
}

// fitSummary returns markdown, or as much of it as the budget allows (cut
// at a line boundary, or at least a character boundary) and a note.
func (a *Action) fitSummary(markdown string) string {
	left := MaxSummaryBytes - a.summaryBytes
	if len(markdown)+1 <= left {
		return markdown
	}
	a.summaryTruncated = true
	keep := max(left-len(truncatedNote(len(markdown)))-1, 0)
	for keep > 0 && !utf8.RuneStart(markdown[keep]) {
		keep--
	}
	cut := markdown[:keep]
	if i := strings.LastIndexByte(cut, '\n'); i >= 0 {
		cut = cut[:i]
	}
	return cut + truncatedNote(len(markdown)-len(cut))
}

func truncatedNote(dropped int) string {
	return fmt.Sprintf("\n\n> **Summary truncated**: %d more bytes would pass GitHub's 1 MiB step summary limit. The job log has everything.", dropped)
}

// go-githubactions panics when a file command cannot be written.
func recoverInto(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: %v", what, r)
	}
}
