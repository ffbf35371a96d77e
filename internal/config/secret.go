package config

// Secret holds a credential. It never prints itself: String, GoString and
// the slog/JSON forms all give "redacted", so a secret that reaches a log
// line or an error by accident stays hidden.
type Secret string

const redacted = "redacted"

// Reveal returns the value, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether a value was given.
func (s Secret) IsSet() bool { return s != "" }

func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return redacted }

// MarshalText keeps secrets out of JSON and text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
