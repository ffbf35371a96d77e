package app_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// The image as the runner runs it: the final stage of the Dockerfile
// copies exactly imageFiles from the build stage, runs as root and starts
// imageEntrypoint. TestDockerfileFinalStage holds the Dockerfile to this,
// and TestRunnerEquivalence builds a root holding exactly this.
const (
	imageEntrypoint = "/usr/local/bin/sqlite-backup-action"
	imageHelperDir  = "/usr/local/lib/sqlite-backup-action"
	imageCACerts    = "/etc/ssl/certs/ca-certificates.crt"
	buildStage      = "build"
)

// imageFile is one COPY --from=build of the final stage.
type imageFile struct {
	from string // path in the build stage
	to   string // path in the image
}

var imageFiles = []imageFile{
	{from: imageCACerts, to: imageCACerts},
	{from: "/out/tmp", to: "/tmp"},
	{from: "/out/helpers/", to: imageHelperDir + "/"},
	{from: "/out/sqlite-backup-action", to: imageEntrypoint},
}

// helperArchs are the host architectures the image ships a helper for.
var helperArchs = []string{"amd64", "arm64"}

// secretWords in an ARG or ENV name would put a secret into the image
// history, which anyone who can pull the image can read.
var secretWords = []string{"KEY", "SECRET", "TOKEN", "PASSWORD", "PASSPHRASE", "CREDENTIAL"}

func parseDockerfile(t *testing.T) []*parser.Node {
	t.Helper()
	f, err := os.Open(filepath.Join(testutil.RepoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile line %d: %s", w.Location.Start.Line, w.Short)
	}
	return res.AST.Children
}

// words returns an instruction's arguments.
func words(n *parser.Node) []string {
	var out []string
	for a := n.Next; a != nil; a = a.Next {
		out = append(out, a.Value)
	}
	return out
}

// TestDockerfileFinalStage parses the Dockerfile with BuildKit's own parser
// and checks the final stage: built from scratch, copying exactly
// imageFiles from the build stage, running as root (the runner's
// file-command files belong to the runner user), with the binary as an
// absolute exec-form ENTRYPOINT (the runner overrides WORKDIR) and no
// CMD; no ARG or ENV anywhere that looks like a secret; and the build
// stage makes a helper for every architecture in helperArchs.
func TestDockerfileFinalStage(t *testing.T) {
	nodes := parseDockerfile(t)
	last := -1
	var buildRuns []string
	stage := ""
	for i, n := range nodes {
		cmd := strings.ToLower(n.Value)
		args := words(n)
		switch cmd {
		case "from":
			last, stage = i, ""
			if len(args) == 3 && strings.EqualFold(args[1], "as") {
				stage = args[2]
			}
		case "run":
			if stage == buildStage {
				buildRuns = append(buildRuns, strings.Join(args, " "))
			}
		case "arg", "env":
			for _, a := range args {
				name, _, _ := strings.Cut(a, "=")
				for _, w := range secretWords {
					if strings.Contains(strings.ToUpper(name), w) {
						t.Errorf("line %d: %s %s looks like a secret: it would be stored in the image", n.StartLine, n.Value, name)
					}
				}
			}
		}
	}
	if last < 0 {
		t.Fatal("no FROM in the Dockerfile")
	}
	if from := words(nodes[last]); len(from) == 0 || (from[0] != "scratch" && !strings.HasPrefix(from[0], "gcr.io/distroless/static")) {
		t.Errorf("final stage FROM %v: want scratch or distroless static", from)
	}
	var copies []imageFile
	user, entrypoint := "", []string(nil)
	for _, n := range nodes[last+1:] {
		args := words(n)
		switch strings.ToLower(n.Value) {
		case "copy":
			if !slices.Equal(n.Flags, []string{"--from=" + buildStage}) || len(args) != 2 {
				t.Errorf("line %d: COPY %v %v: want COPY --from=%s <src> <dst>", n.StartLine, n.Flags, args, buildStage)
				continue
			}
			copies = append(copies, imageFile{from: args[0], to: args[1]})
		case "user":
			user = strings.Join(args, " ")
		case "entrypoint":
			if !n.Attributes["json"] {
				t.Errorf("line %d: ENTRYPOINT in shell form: scratch has no shell; use [\"%s\"]", n.StartLine, imageEntrypoint)
			}
			entrypoint = args
		case "label":
		default:
			t.Errorf("line %d: %s in the final stage: it holds only COPY, USER, ENTRYPOINT and LABEL", n.StartLine, n.Value)
		}
	}
	sortFiles := func(f []imageFile) {
		slices.SortFunc(f, func(a, b imageFile) int { return strings.Compare(a.to, b.to) })
	}
	want := slices.Clone(imageFiles)
	sortFiles(copies)
	sortFiles(want)
	if !slices.Equal(copies, want) {
		t.Errorf("final stage copies\n%v\nwant exactly\n%v", copies, want)
	}
	if user != "0:0" && user != "0" && user != "root" {
		t.Errorf("final stage USER %q: want root (0:0), or the action cannot write the runner's GITHUB_OUTPUT", user)
	}
	if !slices.Equal(entrypoint, []string{imageEntrypoint}) {
		t.Errorf("ENTRYPOINT %q, want [%q]", entrypoint, imageEntrypoint)
	}
	build := strings.Join(buildRuns, "\n")
	for _, s := range []string{"CGO_ENABLED=0", "./cmd/sqlite-backup-helper", "/out/helpers/" + snapshot.HelperName("$arch")} {
		if !strings.Contains(build, s) {
			t.Errorf("the build stage does not run %q", s)
		}
	}
	for _, arch := range helperArchs {
		if !strings.Contains(build, arch) {
			t.Errorf("the build stage makes no helper for linux/%s", arch)
		}
	}
}
