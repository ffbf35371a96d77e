package config

// pruneInputs are the inputs of prune and list (issue: prune and list).
func pruneInputs() []Input { return nil }

// PruneConfig holds the prune and list settings.
type PruneConfig struct{}

// parse fills p from the resolved values; each problem names its input.
func (p *PruneConfig) parse(vals map[string]string) []error { return nil }
