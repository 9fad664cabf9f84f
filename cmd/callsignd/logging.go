package main

import (
	"io"
	"log/slog"
	"strings"
)

// redacted replaces the value of an attribute that must never reach a log.
const redacted = "[REDACTED]"

// secretKeys are attribute keys whose values are credentials. callsignd never
// logs a credential on purpose; the handler redacts these keys as a second
// line of defence, should a dependency or a future change try.
var secretKeys = map[string]bool{
	"token":            true,
	"raw_token":        true,
	"bearer":           true,
	"authorization":    true,
	"assertion":        true,
	"client_assertion": true,
	"secret":           true,
	"client_secret":    true,
	"password":         true,
	"kek":              true,
	"private_key":      true,
	"x-user-token":     true,
	"user_token":       true,
}

// newLogger returns the process logger: text or JSON to w at level, with
// credential attributes redacted.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if secretKeys[strings.ToLower(a.Key)] {
				return slog.String(a.Key, redacted)
			}
			return a
		},
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
