package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestLoggerRedactsCredentials(t *testing.T) {
	const secret = "eyJhbGciOiJFZERTQSJ9.c2VjcmV0.c2ln"
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		l := newLogger(&buf, format, slog.LevelDebug)
		l.Info("call", "token", secret, "Client_Secret", secret, "assertion", secret, "method", "/x.Y/Z")
		l.WithGroup("req").Info("call", "authorization", "Bearer "+secret)
		out := buf.String()
		if strings.Contains(out, secret) {
			t.Errorf("%s log contains a credential:\n%s", format, out)
		}
		if !strings.Contains(out, "/x.Y/Z") || strings.Count(out, redacted) != 4 {
			t.Errorf("%s log lost other attributes or redacted the wrong ones:\n%s", format, out)
		}
	}
}

func TestLoggerFormatAndLevel(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(&buf, "json", slog.LevelWarn)
	l.Info("hidden")
	l.Warn("shown", "k", 1)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if rec["msg"] != "shown" || rec["level"] != "WARN" {
		t.Errorf("record = %v", rec)
	}
}
