package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// certCheckInterval is how often callsignd looks for a renewed --tls-cert and
// --tls-key (for example written by cert-manager), at most.
const certCheckInterval = 10 * time.Second

// tlsConfigs loads the server certificate and, for mTLS, the client CA bundle.
// It returns the configuration of the gRPC listener (with client
// authentication when --tls-client-ca is set) and of the HTTP listener (server
// authentication only, so that probes and JWKS fetchers need no client
// certificate). Both are nil when TLS is off. A renewed certificate is picked
// up without a restart (see [certReloader]).
func tlsConfigs(o *options, logger *slog.Logger) (grpcTLS, httpTLS *tls.Config, err error) {
	if !o.tlsEnabled() {
		return nil, nil, nil
	}
	r, err := newCertReloader(o.tlsCert, o.tlsKey, certCheckInterval, time.Now, logger)
	if err != nil {
		return nil, nil, err
	}
	base := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.getCertificate,
	}
	httpTLS = base.Clone()
	httpTLS.NextProtos = []string{"h2", "http/1.1"}
	grpcTLS = base.Clone()
	grpcTLS.NextProtos = []string{"h2"}
	if o.tlsClientCA != "" {
		pem, err := os.ReadFile(o.tlsClientCA) //nolint:gosec // G703: the operator's --tls-client-ca
		if err != nil {
			return nil, nil, fmt.Errorf("read --tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--tls-client-ca %s holds no PEM certificate: pass a PEM bundle of the CAs that sign client certificates", o.tlsClientCA)
		}
		grpcTLS.ClientCAs = pool
		grpcTLS.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return grpcTLS, httpTLS, nil
}

// certReloader serves the server certificate and reloads it when its files
// change, checking at most once per interval during handshakes. A renewed
// pair that does not load (for example the certificate written but not yet
// its key) is logged and the previous one is served until the next check. It
// is safe for concurrent use.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration
	now               func() time.Time
	logger            *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // modification times and sizes of the loaded files
	checked time.Time
}

func newCertReloader(certFile, keyFile string, interval time.Duration, now func() time.Time, logger *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, interval: interval, now: now, logger: logger}
	stamp := r.fileStamp()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load --tls-cert %s and --tls-key %s: %w (both must be PEM, and the key must match the certificate)", certFile, keyFile, err)
	}
	r.cert, r.stamp, r.checked = &cert, stamp, now()
	return r, nil
}

// fileStamp identifies the current content of both files cheaply.
func (r *certReloader) fileStamp() string {
	var b strings.Builder
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return ""
		}
		fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return b.String()
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.checked) < r.interval {
		return r.cert, nil
	}
	r.checked = now
	stamp := r.fileStamp()
	if stamp == "" || stamp == r.stamp {
		return r.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.logger.Warn("renewed TLS certificate does not load; serving the previous one", "tls_cert", r.certFile, "error", err.Error())
		return r.cert, nil
	}
	r.cert, r.stamp = &cert, stamp
	r.logger.Info("reloaded the TLS certificate", "tls_cert", r.certFile)
	return r.cert, nil
}
