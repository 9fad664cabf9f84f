package interceptor

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// Metric names. Nothing is registered unless [WithMetrics] or
// [WithKeyMetrics] is given a prometheus.Registerer.
const (
	// MetricDecisions counts server decisions, labelled decision ("allow" or
	// "deny") and reason (an ErrorInfo reason, or "OK").
	MetricDecisions = "callsign_server_decisions_total"
	// MetricVerifyDuration is a histogram of the time spent verifying a token
	// that was not in the cache.
	MetricVerifyDuration = "callsign_server_verify_duration_seconds"
	// MetricCacheLookups counts verified-token cache lookups, labelled result
	// ("hit" or "miss").
	MetricCacheLookups = "callsign_server_cache_lookups_total"
	// MetricKeysAge is the age of the live key set in seconds (-1 before the
	// first fetch).
	MetricKeysAge = "callsign_keys_age_seconds"
	// MetricKeysVersion is the version of the live key set.
	MetricKeysVersion = "callsign_keys_version"
	// MetricKeysFetches counts GetKeys fetches, labelled result ("ok" or
	// "error").
	MetricKeysFetches = "callsign_keys_fetches_total"
)

// serverMetrics holds pre-resolved counters so that the hot path does no label
// lookup. A nil *serverMetrics records nothing.
type serverMetrics struct {
	allow       prometheus.Counter
	deny        map[callsignv1.Reason]prometheus.Counter
	verify      prometheus.Observer
	cacheHit    prometheus.Counter
	cacheMiss   prometheus.Counter
	denyUnknown prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricDecisions,
		Help: "Authorization decisions of the callsign server interceptor.",
	}, []string{"decision", "reason"})
	verify := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    MetricVerifyDuration,
		Help:    "Time spent verifying a token not found in the cache.",
		Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 1e-3, 10e-3, 100e-3, 1},
	})
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricCacheLookups,
		Help: "Verified-token cache lookups.",
	}, []string{"result"})
	for _, c := range []prometheus.Collector{decisions, verify, cache} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("interceptor: registering metrics: %w", err)
		}
	}
	m := &serverMetrics{
		allow:       decisions.WithLabelValues("allow", "OK"),
		deny:        make(map[callsignv1.Reason]prometheus.Counter, len(reasonStatus)),
		verify:      verify,
		cacheHit:    cache.WithLabelValues("hit"),
		cacheMiss:   cache.WithLabelValues("miss"),
		denyUnknown: decisions.WithLabelValues("deny", "UNSPECIFIED"),
	}
	for r := range reasonStatus {
		m.deny[r] = decisions.WithLabelValues("deny", ReasonName(r))
	}
	return m, nil
}

func (m *serverMetrics) decision(allow bool, r callsignv1.Reason) {
	if m == nil {
		return
	}
	if allow {
		m.allow.Inc()
		return
	}
	if c, ok := m.deny[r]; ok {
		c.Inc()
		return
	}
	m.denyUnknown.Inc()
}

func (m *serverMetrics) verified(d time.Duration) {
	if m != nil {
		m.verify.Observe(d.Seconds())
	}
}

func (m *serverMetrics) cacheLookup(hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.cacheHit.Inc()
	} else {
		m.cacheMiss.Inc()
	}
}

// keyMetrics are the metrics of a live key source; nil records nothing.
type keyMetrics struct {
	ok, failed prometheus.Counter
}

func newKeyMetrics(reg prometheus.Registerer, s *LiveKeySource) (*keyMetrics, error) {
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: MetricKeysAge,
		Help: "Seconds since the live key set was last fetched successfully (-1 before the first fetch).",
	}, func() float64 {
		a := s.age()
		if a < 0 {
			return -1
		}
		return a.Seconds()
	})
	version := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: MetricKeysVersion,
		Help: "Version of the live key set.",
	}, func() float64 { return float64(s.version()) })
	fetches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricKeysFetches,
		Help: "GetKeys fetches by result.",
	}, []string{"result"})
	var errs []error
	for _, c := range []prometheus.Collector{age, version, fetches} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("interceptor: registering key metrics: %w", err)
	}
	return &keyMetrics{ok: fetches.WithLabelValues("ok"), failed: fetches.WithLabelValues("error")}, nil
}

func (m *keyMetrics) fetched(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.ok.Inc()
	} else {
		m.failed.Inc()
	}
}
