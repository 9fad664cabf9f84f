package main

import (
	"net/http"
	"sync/atomic"
)

// newHTTPHandler serves the HTTP listener:
//
//   - GET /.well-known/jwks.json: the public signing keys (same as GetKeys);
//   - GET /healthz: liveness, 200 while the process runs;
//   - GET /readyz: readiness, 200 once serving (keys published), 503 before
//     and during shutdown;
//   - GET /metrics: Prometheus metrics from callsignd's own registry.
//
// Other paths are 404, other methods 405.
func newHTTPHandler(jwks, metrics http.Handler, ready *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /.well-known/jwks.json", jwks)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready.Load() {
			writeText(w, http.StatusOK, "ready\n")
			return
		}
		writeText(w, http.StatusServiceUnavailable, "not ready\n")
	})
	mux.Handle("GET /metrics", metrics)
	return mux
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}
