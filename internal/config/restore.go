package config

// restoreInputs are the inputs of restore and verify.
func restoreInputs() []Input { return nil }

// RestoreConfig holds the restore and verify settings.
type RestoreConfig struct{}

// parse fills r from the resolved values; each problem names its input.
func (r *RestoreConfig) parse(vals map[string]string) []error { return nil }
