package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/callsign-dev/callsign/internal/token"
)

// Files in the data directory.
const (
	dbFileName     = "callsign.db"
	devKEKFileName = "kek"         // dev mode: the generated key-encryption key, base64
	credentialsDir = "credentials" // dev mode: <account>.jwk private keys
	kekSize        = 32            // AES-256
)

// devGrant lets a development account obtain tokens for one audience.
type devGrant struct {
	audience string
	scopes   []string
}

// devAccount is one account of the shop demo that --dev registers.
type devAccount struct {
	id          string
	description string
	grants      []devGrant
	userTenants []string // tenants the account may assert users of; none: may not
}

// adminAccountID is the operator account that --dev registers for the CLI.
const adminAccountID = "callsign-admin"

// devAccounts are the accounts of the shop demo (examples/shop) and the
// operator account. Every one gets an Ed25519 key in credentials/.
var devAccounts = []devAccount{
	{
		id:          "gateway",
		description: "shop demo: the edge; asserts users of tenants acme and globex",
		grants:      []devGrant{{audience: "orders", scopes: []string{"orders.place"}}},
		userTenants: []string{"acme", "globex"},
	},
	{
		id:          "orders",
		description: "shop demo: places orders on behalf of users",
		grants: []devGrant{
			{audience: "pricing", scopes: []string{"pricing.quote"}},
			{audience: "billing", scopes: []string{"billing.charge"}},
			{audience: "inventory", scopes: []string{"inventory.watch"}},
		},
	},
	{id: "pricing", description: "shop demo: quotes prices"},
	{id: "billing", description: "shop demo: charges orders"},
	{id: "inventory", description: "shop demo: streams stock levels"},
	{
		id:          "rogue",
		description: "shop demo: tries what it must not (pricing without scopes; billing, but it is not orders)",
		grants: []devGrant{
			{audience: "pricing", scopes: nil},
			{audience: "billing", scopes: []string{"billing.charge"}},
		},
	},
	{
		id:          adminAccountID,
		description: "operator: the callsign CLI",
		grants:      []devGrant{{audience: "callsign", scopes: []string{"callsign.admin", "callsign.verify"}}},
	},
}

// ensureDir creates dir (and its parents) with owner-only permissions when it
// does not exist.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil { //nolint:gosec // G703: the path is the operator's --data-dir
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	return nil
}

// devKEK returns the path of the development key-encryption key in dataDir,
// generating it (32 random bytes, base64, mode 0600) on first use. created
// reports whether it was generated now.
func devKEK(dataDir string) (path string, created bool, err error) {
	path = filepath.Join(dataDir, devKEKFileName)
	if _, err := os.Stat(path); err == nil { //nolint:gosec // G703: a fixed name in the operator's --data-dir
		return path, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("dev key-encryption key: %w", err)
	}
	raw := make([]byte, kekSize)
	if _, err := rand.Read(raw); err != nil {
		return "", false, fmt.Errorf("dev key-encryption key: %w", err)
	}
	data := []byte(base64.StdEncoding.EncodeToString(raw) + "\n")
	clear(raw)
	if err := writeFileExcl(path, data); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another callsignd on the same directory was first: use its key.
			return path, false, nil
		}
		return "", false, fmt.Errorf("dev key-encryption key: %w", err)
	}
	return path, true, nil
}

// writeFileExcl writes data to a new file at path with mode 0600; it fails if
// the file exists. The file appears complete or not at all.
func writeFileExcl(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // gone after the link; best effort otherwise
	// CreateTemp makes the file 0600.
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Link, unlike rename, refuses to replace an existing file.
	return os.Link(name, path)
}

// devCredential is the key of one development account.
type devCredential struct {
	accountID string
	kid       string
	publicJWK string // JSON: kty, crv, kid, x
	path      string // the private JWK file
}

// loadOrCreateCredential returns the credential of accountID from
// dir/<accountID>.jwk, generating a new Ed25519 key (file mode 0600) when the
// file does not exist. An existing key is kept across restarts.
func loadOrCreateCredential(dir, accountID string) (devCredential, error) {
	path := filepath.Join(dir, accountID+".jwk")
	data, err := os.ReadFile(path) //nolint:gosec // G703: a fixed account id of devAccounts in the operator's --data-dir
	switch {
	case err == nil:
		priv, err := parsePrivateJWK(data)
		if err != nil {
			return devCredential{}, fmt.Errorf("credential %s: %w; delete the file to generate a new key", path, err)
		}
		return newDevCredential(accountID, path, priv)
	case errors.Is(err, fs.ErrNotExist):
	default:
		return devCredential{}, fmt.Errorf("credential %s: %w", path, err)
	}

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return devCredential{}, fmt.Errorf("credential %s: %w", accountID, err)
	}
	cred, err := newDevCredential(accountID, path, priv)
	if err != nil {
		return devCredential{}, err
	}
	doc, err := token.MarshalAccountKey(priv, cred.kid)
	if err != nil {
		return devCredential{}, fmt.Errorf("credential %s: %w", accountID, err)
	}
	if err := writeFileExcl(path, doc); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another callsignd on the same directory was first: use its key.
			return loadOrCreateCredential(dir, accountID)
		}
		return devCredential{}, fmt.Errorf("credential %s: %w", path, err)
	}
	return cred, nil
}

func newDevCredential(accountID, path string, priv ed25519.PrivateKey) (devCredential, error) {
	pub := priv.Public().(ed25519.PublicKey) //nolint:forcetypeassert // always for ed25519
	kid := token.Thumbprint(pub)
	return devCredential{accountID: accountID, kid: kid, publicJWK: token.MarshalAccountPublicKey(pub, kid), path: path}, nil
}

// parsePrivateJWK reads an Ed25519 private JWK and checks that its public
// half matches its seed.
func parsePrivateJWK(data []byte) (ed25519.PrivateKey, error) {
	priv, _, err := token.ParseAccountKey(data)
	return priv, err
}
