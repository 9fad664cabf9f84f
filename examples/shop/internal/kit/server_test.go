package kit

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	shopv1 "github.com/callsign-dev/callsign/examples/shop/gen/shop/v1"
	"github.com/callsign-dev/callsign/interceptor"
	"github.com/callsign-dev/callsign/internal/token"
)

func staticKeys(t *testing.T) interceptor.KeySource {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	jwks := `{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"k1","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}]}`
	keys, err := interceptor.NewStaticKeySource([]byte(jwks), interceptor.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// A shop service refuses to start when a method has no callsign rule.
func TestNewServerRefusesMethodsWithoutRule(t *testing.T) {
	s := &Service{Flags: Flags{Account: "pricing", Issuer: "callsign", Skew: interceptor.DefaultSkew}, Log: slog.New(slog.DiscardHandler)}
	gs, err := s.newServer(staticKeys(t), func(gs *grpc.Server) {
		shopv1.RegisterPricingServiceServer(gs, shopv1.UnimplementedPricingServiceServer{})
	})
	if err != nil || gs == nil {
		t.Fatalf("a server whose methods all have rules: %v", err)
	}
	_, err = s.newServer(staticKeys(t), func(gs *grpc.Server) {
		shopv1.RegisterPricingServiceServer(gs, shopv1.UnimplementedPricingServiceServer{})
		healthpb.RegisterHealthServer(gs, health.NewServer())
	})
	if !errors.Is(err, ErrUnprotected) || !strings.Contains(err.Error(), "/grpc.health.v1.Health/Check") {
		t.Fatalf("health registered without a rule: err = %v, want ErrUnprotected naming Health/Check", err)
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(nil)
	b64 := base64.RawURLEncoding.EncodeToString
	write := func(name, doc string) string {
		p := dir + "/" + name
		if err := writeFile(p, doc); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.jwk", `{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"`+b64(priv.Public().(ed25519.PublicKey))+`","d":"`+b64(priv.Seed())+`"}`)
	key, kid, err := LoadKey(good)
	if err != nil || kid != "k1" || !key.Equal(priv) {
		t.Fatalf("LoadKey: kid %q, err %v", kid, err)
	}
	// Without a kid, the key's RFC 7638 thumbprint names it.
	nokid := write("nokid.jwk", `{"kty":"OKP","crv":"Ed25519","d":"`+b64(priv.Seed())+`"}`)
	if _, kid, err := LoadKey(nokid); err != nil || kid != token.Thumbprint(priv.Public().(ed25519.PublicKey)) {
		t.Errorf("a key without kid: kid %q, %v", kid, err)
	}
	for name, doc := range map[string]string{
		"public.jwk": `{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"` + b64(priv.Public().(ed25519.PublicKey)) + `"}`,
		"rsa.jwk":    `{"kty":"RSA","kid":"k1"}`,
		"junk.jwk":   `not json`,
	} {
		if _, _, err := LoadKey(write(name, doc)); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	if _, _, err := LoadKey(dir + "/missing.jwk"); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("a missing file: %v (the error should say where callsignd --dev writes keys)", err)
	}
}

func writeFile(path, doc string) error {
	return os.WriteFile(path, []byte(doc), 0o600)
}
