package main

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// Metric names of callsignd itself. The interceptor guarding callsignd adds
// its own (callsign_server_*, callsign_keys_*), in the same registry.
const (
	metricRequests       = "callsignd_requests_total"
	metricRequestSeconds = "callsignd_request_duration_seconds"
	metricTokensIssued   = "callsignd_tokens_issued_total"
)

// newMetrics returns callsignd's own Prometheus registry, with the Go runtime
// and process collectors, and the handler that serves it. The global registry
// is never used.
func newMetrics() (*prometheus.Registry, http.Handler) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// rpcMetrics counts and times every gRPC call callsignd serves, and counts the
// tokens it issues by type.
type rpcMetrics struct {
	requests *prometheus.CounterVec   // method, code
	seconds  *prometheus.HistogramVec // method
	issued   *prometheus.CounterVec   // type
}

func newRPCMetrics(reg prometheus.Registerer) (*rpcMetrics, error) {
	m := &rpcMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricRequests,
			Help: "gRPC calls served by callsignd, by full method name and status code.",
		}, []string{"method", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricRequestSeconds,
			Help:    "Time to serve a gRPC call, by full method name.",
			Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1},
		}, []string{"method"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricTokensIssued,
			Help: "Tokens issued by IssueToken, by type (service or user).",
		}, []string{"type"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.seconds, m.issued} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Both types are exported from the start, at zero.
	m.issued.WithLabelValues("service")
	m.issued.WithLabelValues("user")
	return m, nil
}

// unary counts and times unary calls. Only unary methods that callsignd
// registers reach it (grpc answers unknown methods itself), so the method
// label stays bounded.
func (m *rpcMetrics) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.observe(info.FullMethod, err, start)
		if err == nil {
			if r, ok := resp.(*callsignv1.IssueTokenResponse); ok {
				switch r.GetTokenType() {
				case callsignv1.TokenType_TOKEN_TYPE_SERVICE:
					m.issued.WithLabelValues("service").Inc()
				case callsignv1.TokenType_TOKEN_TYPE_USER:
					m.issued.WithLabelValues("user").Inc()
				default:
				}
			}
		}
		return resp, err
	}
}

// stream counts and times streams (reflection, health watches).
func (m *rpcMetrics) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		m.observe(info.FullMethod, err, start)
		return err
	}
}

func (m *rpcMetrics) observe(method string, err error, start time.Time) {
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	m.seconds.WithLabelValues(method).Observe(time.Since(start).Seconds())
}
