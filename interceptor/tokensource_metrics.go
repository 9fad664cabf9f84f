package interceptor

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of the calling side. Nothing is registered unless
// [WithTokenSourceMetrics] is given a prometheus.Registerer.
const (
	// MetricTokenFetches counts the IssueToken calls of a token source,
	// labelled trigger ("call": a caller had no valid token; "refresh": the
	// background renewal) and result ("ok" or "error").
	MetricTokenFetches = "callsign_client_token_fetches_total"
	// MetricTokenInvalidations counts cached tokens dropped after a server
	// refused them (TOKEN_EXPIRED, KEY_UNKNOWN or TOKEN_REVOKED).
	MetricTokenInvalidations = "callsign_client_token_invalidations_total"
	// MetricTokenUnavailable counts Token calls that failed closed with
	// Unavailable (TOKEN_UNAVAILABLE).
	MetricTokenUnavailable = "callsign_client_token_unavailable_total"
)

// WithTokenSourceMetrics registers the token source's Prometheus metrics
// (see [MetricTokenFetches]) with reg. Without it nothing is registered
// anywhere; NewTokenSource fails when registration does.
func WithTokenSourceMetrics(reg prometheus.Registerer) TokenSourceOption {
	return func(c *tokenSourceConfig) { c.metrics = reg }
}

// tsMetrics holds pre-resolved counters; a nil *tsMetrics records nothing.
type tsMetrics struct {
	fetched     [2][2]prometheus.Counter // [refresh][ok]
	invalidated prometheus.Counter
	unavailable prometheus.Counter
}

func newTSMetrics(reg prometheus.Registerer) (*tsMetrics, error) {
	fetches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricTokenFetches,
		Help: "IssueToken calls of the callsign token source.",
	}, []string{"trigger", "result"})
	invalidated := prometheus.NewCounter(prometheus.CounterOpts{
		Name: MetricTokenInvalidations,
		Help: "Cached service tokens dropped after a server refused them.",
	})
	unavailable := prometheus.NewCounter(prometheus.CounterOpts{
		Name: MetricTokenUnavailable,
		Help: "Token requests that failed closed because no valid token could be obtained.",
	})
	var errs []error
	for _, c := range []prometheus.Collector{fetches, invalidated, unavailable} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("interceptor: registering token source metrics: %w", err)
	}
	m := &tsMetrics{invalidated: invalidated, unavailable: unavailable}
	for i, trigger := range []string{"call", "refresh"} {
		m.fetched[i][0] = fetches.WithLabelValues(trigger, "error")
		m.fetched[i][1] = fetches.WithLabelValues(trigger, "ok")
	}
	return m, nil
}

func (m *tsMetrics) fetch(refresh, ok bool) {
	if m == nil {
		return
	}
	i, j := 0, 0
	if refresh {
		i = 1
	}
	if ok {
		j = 1
	}
	m.fetched[i][j].Inc()
}

func (m *tsMetrics) invalidation() {
	if m != nil {
		m.invalidated.Inc()
	}
}

func (m *tsMetrics) failClosed() {
	if m != nil {
		m.unavailable.Inc()
	}
}
