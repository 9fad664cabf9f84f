package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "callsignd test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// The CLI talks to a callsignd that serves TLS with --ca, and says what to do
// when the transport does not match.
func TestTLS(t *testing.T) {
	needServer(t)
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	info, stop, err := launch(server.bin, dir, "--tls-cert", cert, "--tls-key", key)
	t.Cleanup(stop)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CALLSIGN_ADDR": info.GRPCAddr, "CALLSIGN_KEY": filepath.Join(info.CredentialsDir, "callsign-admin.jwk")}
	mustCS(t, env, "signing-keys", "list", "--ca", cert)
	env["CALLSIGN_CA"] = cert
	mustCS(t, env, "accounts", "show", "orders")
	delete(env, "CALLSIGN_CA")
	// Plaintext to a TLS server, and TLS without the right roots.
	wantFail(t, exitError, "cannot reach callsignd", cs(t, env, "", "signing-keys", "list", "--timeout", "5s"))
	wantFail(t, exitError, "cannot reach callsignd", cs(t, env, "", "signing-keys", "list", "--tls", "--timeout", "5s"))
	wantFail(t, exitError, "holds no PEM certificate", cs(t, env, "", "signing-keys", "list", "--ca", key))
}
