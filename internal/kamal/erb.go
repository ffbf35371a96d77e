package kamal

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Kamal runs deploy.yml through ERB before parsing it as YAML. Without a
// Ruby interpreter we evaluate only what deploy.yml files use ERB for in
// practice, reading the environment; every other <%= %> tag becomes a
// placeholder, an error only when a key we need holds it.

var (
	// <%= ENV["X"] %> and <%= ENV['X'] %>: nil (empty) when X is unset.
	envIndex = regexp.MustCompile(`^ENV\[\s*["']([A-Za-z_][A-Za-z0-9_]*)["']\s*\]$`)
	// <%= ENV.fetch("X") %> (fails when unset) and ENV.fetch("X", "default").
	envFetch = regexp.MustCompile(`^ENV\.fetch\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']\s*(?:,\s*(?:"([^"]*)"|'([^']*)')\s*)?\)$`)
	// A placeholder left in the YAML text for an ERB tag we cannot evaluate.
	placeholder = regexp.MustCompile(`SBA_KAMAL_ERB_([0-9]+)_`)
)

// erbTable remembers the tags that could not be evaluated.
type erbTable struct {
	getenv  func(string) string
	pending []erbTag
}

type erbTag struct {
	source string // the whole tag as written
	reason string // why it has no value
}

// expand evaluates the ERB tags of text: environment reads become their
// value, comments vanish, other output tags become placeholders. Ruby
// control code (<% if ... %>) changes the document's shape and cannot be
// skipped, so it is an error.
func (t *erbTable) expand(file, text string) (string, error) {
	var b strings.Builder
	rest := text
	for {
		i := strings.Index(rest, "<%")
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		line := strings.Count(text[:len(text)-len(rest)+i], "\n") + 1
		tagText := rest[i:]
		if strings.HasPrefix(tagText, "<%%") { // a literal "<%"
			b.WriteString("<%")
			rest = tagText[3:]
			continue
		}
		j := strings.Index(tagText, "%>")
		if j < 0 {
			return "", fmt.Errorf("%s line %d: ERB tag <%% is not closed by %%>", file, line)
		}
		tag := tagText[:j+2]
		rest = tagText[j+2:]
		body := strings.TrimSuffix(tag[2:len(tag)-2], "-")
		switch {
		case strings.HasPrefix(body, "#"):
			continue // a comment
		case strings.HasPrefix(body, "="):
			b.WriteString(t.evaluate(tag, strings.TrimSpace(body[1:])))
		default:
			return "", fmt.Errorf("%s line %d: ERB code %s cannot be evaluated without Ruby: "+
				"give the inputs explicitly instead of reading them from deploy.yml", file, line, oneLine(tag))
		}
	}
}

// evaluate returns the value of an output tag, or a placeholder for it.
func (t *erbTable) evaluate(tag, expr string) string {
	if m := envIndex.FindStringSubmatch(expr); m != nil {
		if v := t.getenv(m[1]); v != "" {
			return v
		}
		return t.later(tag, fmt.Sprintf("reads env %s, which is not set: set it in the step's env, or give the input explicitly", m[1]))
	}
	if m := envFetch.FindStringSubmatch(expr); m != nil {
		if v := t.getenv(m[1]); v != "" {
			return v
		}
		if strings.Contains(expr, ",") {
			return m[2] + m[3] // the default
		}
		return t.later(tag, fmt.Sprintf("reads env %s, which is not set: set it in the step's env, or give the input explicitly", m[1]))
	}
	return t.later(tag, "is Ruby code, which cannot be evaluated here: give the input explicitly")
}

func (t *erbTable) later(tag, reason string) string {
	t.pending = append(t.pending, erbTag{source: oneLine(tag), reason: reason})
	return fmt.Sprintf("SBA_KAMAL_ERB_%d_", len(t.pending)-1)
}

// resolve fails when s holds a placeholder, saying which tag and why.
func (t *erbTable) resolve(s string) (string, error) {
	m := placeholder.FindStringSubmatch(s)
	if m == nil {
		return s, nil
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n >= len(t.pending) {
		return s, nil // not ours: the text just looks like a placeholder
	}
	tag := t.pending[n]
	return "", fmt.Errorf("ERB %s %s", tag.source, tag.reason)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
