package config

// kamalInputs are the inputs that read defaults from a Kamal deploy.yml.
func kamalInputs() []Input { return nil }

// KamalConfig holds the Kamal settings.
type KamalConfig struct{}

// parse fills k from the resolved values; each problem names its input.
func (k *KamalConfig) parse(vals map[string]string) []error { return nil }
