package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
