package interceptor

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/metadata"
)

// srvLog is a concurrency-safe buffer for a JSON slog handler.
type srvLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *srvLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *srvLog) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	l.buf.Reset()
	return out
}

func (l *srvLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newSrvDirectWithSink(t *testing.T, logAllowed bool) (*srvDirect, *srvLog, *SlogAuditSink, string) {
	t.Helper()
	keys := srvFixedKeys(t)
	svc, _ := srvFixedTokens(t, keys)
	out := &srvLog{}
	sink := NewSlogAuditSink(slog.New(slog.NewJSONHandler(out, nil)), logAllowed)
	d := newSrvDirect(t, keys, WithAuditSink(sink))
	return d, out, sink, svc
}

func TestSlogAuditSinkDefault(t *testing.T) {
	keys := srvFixedKeys(t)
	svc, _ := srvFixedTokens(t, keys)
	out := &srvLog{}
	// The default sink, through WithLogger.
	src, err := NewStaticKeySource(keys.jwks, EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	d := &srvDirect{clock: newSrvClock()}
	d.server, err = NewServer(src, WithIssuer(srvIssuer), WithAudience(srvAudience), WithClock(d.clock),
		WithLogger(slog.New(slog.NewJSONHandler(out, nil))))
	if err != nil {
		t.Fatal(err)
	}
	d.unary = d.server.UnaryServerInterceptor()
	if d.server.countOnly == nil {
		t.Fatal("the default sink does not just count allowed calls")
	}
	if ran, err := d.call("Scoped", metadata.MD{MDAuthorization: {"Bearer " + svc}}); !ran || err != nil {
		t.Fatal(err)
	}
	if out.String() != "" {
		t.Fatalf("an allowed call was logged: %s", out.String())
	}
	if d.server.countOnly.Allowed() != 1 {
		t.Fatalf("allowed count %d", d.server.countOnly.Allowed())
	}
	bad := "Bearer " + svc[:len(svc)-3] + "AAA"
	if ran, _ := d.call("Scoped", metadata.MD{MDAuthorization: {bad}, MDCorrelationID: {"corr-7"}}); ran {
		t.Fatal("handler ran")
	}
	lines := out.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d log lines", len(lines))
	}
	l := lines[0]
	if l["level"] != "WARN" || l["decision"] != "deny" || l["reason"] != "SIGNATURE_INVALID" || l["method"] != srvTestSvc+"Scoped" ||
		l["correlation_id"] != "corr-7" || l["code"] != "Unauthenticated" || len(l["token_hash"].(string)) != 12 {
		t.Fatalf("log line %v", l)
	}
	if d.server.countOnly.Denied() != 1 {
		t.Fatalf("denied count %d", d.server.countOnly.Denied())
	}
}

func TestSlogAuditSinkLogsNoToken(t *testing.T) {
	d, out, _, svc := newSrvDirectWithSink(t, true)
	mds := []metadata.MD{
		{MDAuthorization: {"Bearer " + svc}},
		{MDAuthorization: {"Bearer " + svc + "x"}},
		{MDAuthorization: {"Bearer " + svc, "Bearer " + svc}},
		{MDAuthorization: {"Basic " + svc}},
		{MDAuthorization: {"Bearer " + svc}, MDUserToken: {svc}},
		{MDAuthorization: {"Bearer " + svc}, MDRequestID: {svc}},
	}
	for _, md := range mds {
		d.call("Scoped", md)
	}
	logged := out.String()
	if strings.Contains(logged, svc[:40]) || strings.Contains(logged, svc[len(svc)-40:]) {
		t.Fatalf("a token reached the log:\n%s", logged)
	}
	lines := out.lines(t)
	if len(lines) != len(mds) {
		t.Fatalf("%d lines for %d calls", len(lines), len(mds))
	}
	if lines[0]["level"] != "INFO" || lines[0]["decision"] != "allow" || lines[0]["caller"] != "orders" || lines[0]["jti"] != "AAAAAAAAAAAAAAAAAAAAAA" {
		t.Fatalf("allowed line %v", lines[0])
	}
}

func TestServerMetrics(t *testing.T) {
	keys := srvFixedKeys(t)
	svc, _ := srvFixedTokens(t, keys)
	reg := prometheus.NewPedanticRegistry()
	d := newSrvDirect(t, keys, WithMetrics(reg))
	md := metadata.MD{MDAuthorization: {"Bearer " + svc}}
	d.call("Scoped", md)
	d.call("Scoped", md)
	d.call("NoRule", md)
	d.call("Scoped", metadata.MD{})
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{MetricDecisions, map[string]string{"decision": "allow", "reason": "OK"}, 2},
		{MetricDecisions, map[string]string{"decision": "deny", "reason": "NO_POLICY"}, 1},
		{MetricDecisions, map[string]string{"decision": "deny", "reason": "TOKEN_MISSING"}, 1},
		{MetricCacheLookups, map[string]string{"result": "hit"}, 2},
		{MetricCacheLookups, map[string]string{"result": "miss"}, 1},
		{MetricVerifyDuration, nil, 1},
	} {
		if got := srvMetric(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The same registry twice: the second server reports the conflict.
	if _, err := NewServer(&StaticKeySource{}, WithIssuer("i"), WithAudience("a"), WithMetrics(reg)); err == nil {
		t.Fatal("duplicate registration accepted")
	}
}

func TestWithLogAllowed(t *testing.T) {
	keys := srvFixedKeys(t)
	svc, _ := srvFixedTokens(t, keys)
	src, err := NewStaticKeySource(keys.jwks, EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	out := &srvLog{}
	s, err := NewServer(src, WithIssuer(srvIssuer), WithAudience(srvAudience), WithClock(newSrvClock()),
		WithLogger(slog.New(slog.NewJSONHandler(out, nil))), WithLogAllowed(true))
	if err != nil {
		t.Fatal(err)
	}
	if s.countOnly != nil {
		t.Fatal("allowed calls only counted")
	}
	d := &srvDirect{server: s, unary: s.UnaryServerInterceptor()}
	if ran, err := d.call("Scoped", metadata.MD{MDAuthorization: {"Bearer " + svc}, MDRequestID: {"r-1"}}); !ran || err != nil {
		t.Fatal(err)
	}
	lines := out.lines(t)
	if len(lines) != 1 || lines[0]["decision"] != "allow" || lines[0]["request_id"] != "r-1" || lines[0]["caller"] != "orders" {
		t.Fatalf("log %v", lines)
	}
}
