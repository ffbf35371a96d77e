package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/kamal"
)

// DefaultKamalConfig is where Kamal keeps its config, relative to the
// app's repository (the workspace in the Action, the cwd in the CLI).
const DefaultKamalConfig = "config/deploy.yml"

// destinationName is what kamal_destination accepts: a file-name part.
var destinationName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// kamalInputs are the inputs that read defaults from a Kamal deploy.yml.
func kamalInputs() []Input {
	cmds := []string{CommandBackup, CommandRestore} // the commands that connect to the host
	return []Input{
		{Name: "kamal", Default: "false", Bool: true, Commands: cmds,
			Description: "backup, restore: read the defaults of ssh_host (first host of the primary role), ssh_user, ssh_port, ssh_jump_host (ssh.proxy) " +
				"and remote_path (the volume mounted at /rails/storage) from the app's Kamal config, for those not given. " +
				"Needs the app's repository checked out (actions/checkout)."},
		{Name: "kamal_destination", Commands: cmds,
			Description: "Kamal destination, as in kamal deploy -d staging: config/deploy.staging.yml is merged over kamal_config. Implies kamal: true."},
		{Name: "kamal_config", Default: DefaultKamalConfig, Commands: cmds,
			Description: "Path of the Kamal config, relative to the workspace (the current directory in the CLI)."},
	}
}

// KamalConfig holds the Kamal settings.
type KamalConfig struct {
	Enabled     bool   // kamal: true, or a kamal_destination
	Destination string // "" or a destination name
	Path        string // config/deploy.yml
}

// parse fills k from the resolved values; each problem names its input.
func (k *KamalConfig) parse(vals map[string]string) []error {
	var errs []error
	bad := func(input, format string, args ...any) {
		errs = append(errs, fmt.Errorf("input %s: "+format, append([]any{input}, args...)...))
	}
	var ok bool
	if k.Enabled, ok = parseBool(vals["kamal"]); !ok {
		bad("kamal", "%q is not true or false", vals["kamal"])
	}
	k.Destination = strings.TrimSpace(vals["kamal_destination"])
	if k.Destination != "" {
		k.Enabled = true
		if !destinationName.MatchString(k.Destination) {
			bad("kamal_destination", "%q is not a destination name like staging", k.Destination)
		}
	}
	k.Path = strings.TrimSpace(vals["kamal_config"])
	if k.Path == "" {
		k.Path = DefaultKamalConfig
	}
	return errs
}

// kamalFills maps each input Kamal can default to the deploy.yml field
// it comes from.
var kamalFills = []struct {
	input string
	field kamal.Field
}{
	{"ssh_host", kamal.FieldHost},
	{"ssh_user", kamal.FieldSSHUser},
	{"ssh_port", kamal.FieldSSHPort},
	{"ssh_jump_host", kamal.FieldProxy},
	{"remote_path", kamal.FieldStorage},
}

// KamalFilled reports whether ApplyKamal can fill the input: such an
// input must not get a default from action.yml, or the runner would pass
// the default as if the user had given it.
func KamalFilled(input string) bool {
	for _, f := range kamalFills {
		if f.input == input {
			return true
		}
	}
	return false
}

// ApplyKamal fills ssh_host, ssh_user, ssh_port, ssh_jump_host and
// remote_path from the app's Kamal config when kamal is on, each only when
// given(input) is false: explicit inputs always win. It reads only the
// deploy.yml keys it needs, so a key it cannot evaluate (ERB that is not
// a plain environment read) fails only when its input was not given.
// getenv evaluates <%= ENV["X"] %>. Only backup and restore read it: the
// other commands never connect to the host. Call it between Resolve and
// FromValues.
func ApplyKamal(vals map[string]string, given func(input string) bool, readFile func(string) ([]byte, error), getenv func(string) string) error {
	var k KamalConfig
	if errs := k.parse(vals); len(errs) > 0 || !k.Enabled {
		return nil // FromValues reports bad kamal inputs
	}
	switch strings.TrimSpace(vals["command"]) {
	case CommandBackup, CommandRestore:
	default:
		return nil // prune, list and verify never connect to the host
	}
	var fields []kamal.Field
	for _, f := range kamalFills {
		if !given(f.input) {
			fields = append(fields, f.field)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	c, err := kamal.Load(kamal.Options{Path: k.Path, Destination: k.Destination, Fields: fields, ReadFile: readFile, Getenv: getenv})
	if err != nil {
		return kamalError(err)
	}
	for _, f := range kamalFills {
		if given(f.input) {
			continue
		}
		switch f.field {
		case kamal.FieldHost:
			vals[f.input] = c.Host
		case kamal.FieldSSHUser:
			vals[f.input] = c.SSHUser
		case kamal.FieldSSHPort:
			vals[f.input] = strconv.Itoa(c.SSHPort)
		case kamal.FieldProxy:
			vals[f.input] = c.SSHProxy
		case kamal.FieldStorage:
			if c.StoragePath == "" {
				return fmt.Errorf("input remote_path: not given, and no volume in %s is mounted at %s: give remote_path",
					strings.Join(c.Files, " + "), kamal.StorageMount)
			}
			vals[f.input] = c.StoragePath
		}
	}
	return nil
}

// kamalError names the input each failing deploy.yml key was read for.
func kamalError(err error) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		input := "kamal"
		var fe *kamal.FieldError
		if errors.As(e, &fe) {
			for _, f := range kamalFills {
				if f.field == fe.Field {
					input = f.input
				}
			}
		}
		out = append(out, fmt.Errorf("input %s: from kamal: %w", input, e))
	}
	return errors.Join(out...)
}
