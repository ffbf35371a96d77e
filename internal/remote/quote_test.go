package remote

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestQuote runs every quoted word through a real /bin/sh: the shell must
// hand back exactly the input, and nothing in it may execute.
func TestQuote(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	cases := []struct {
		name, in string
	}{
		{"empty", ""},
		{"plain", "production.sqlite3"},
		{"spaces", "my app/storage dir"},
		{"single quote", "it's"},
		{"double quote", `say "hi"`},
		{"command substitution", "$(touch " + marker + ")"},
		{"backticks", "`touch " + marker + "`"},
		{"variables", "$HOME ${PATH}"},
		{"newline", "a\nb"},
		{"glob", "*.sqlite3"},
		{"semicolon", "x; touch " + marker},
		{"leading dash", "-rf"},
		{"backslash", `a\'b\\`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command("/bin/sh", "-c", "printf %s "+Quote(tc.in)).Output()
			if err != nil {
				t.Fatalf("sh: %v", err)
			}
			if got, want := string(out), tc.in; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("quoted input executed a command")
			}
		})
	}
}

func TestCommand(t *testing.T) {
	got := Command("/var/tmp/x y/helper", "--dir", "it's")
	want := `'/var/tmp/x y/helper' '--dir' 'it'"'"'s'`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
