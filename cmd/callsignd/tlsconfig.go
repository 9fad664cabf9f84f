package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// tlsConfigs loads the server certificate and, for mTLS, the client CA bundle.
// It returns the configuration of the gRPC listener (with client
// authentication when --tls-client-ca is set) and of the HTTP listener (server
// authentication only, so that probes and JWKS fetchers need no client
// certificate). Both are nil when TLS is off.
func tlsConfigs(o *options) (grpcTLS, httpTLS *tls.Config, err error) {
	if !o.tlsEnabled() {
		return nil, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, nil, fmt.Errorf("load --tls-cert %s and --tls-key %s: %w (both must be PEM, and the key must match the certificate)", o.tlsCert, o.tlsKey, err)
	}
	base := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
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
