package authsvc

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/callsign-dev/callsign/internal/token"
)

// keyReloadInterval bounds how stale a process's view of the signing keys may
// be when another process (a replica on the same database) changed them. A
// retired key stays published for this long on top of the maximum token
// lifetime and the skew, so that a token signed from a stale view still expires
// before its key leaves the published set.
const keyReloadInterval = time.Second

// sealPrefix is the additional data of the AES-GCM encryption of a private key,
// completed by the key id: a ciphertext moved to another key id does not open.
const sealPrefix = "callsign signing key v1\x00"

var errKEK = errors.New("authsvc: key-encryption key must be 32 bytes")

// errTooManySigningKeys refuses a rotation that would publish more than
// token.MaxKeys keys; RotateSigningKeys answers it with errRotationRefused.
var (
	errTooManySigningKeys = errors.New("authsvc: rotation refused: the published key set is full")
	errRotationRefused    = status.Error(codes.FailedPrecondition, "callsign: too many published signing keys; retry once retired keys are removed")
)

// sealPrivate encrypts a PKCS #8 private key under kek (AES-256-GCM, random
// 96-bit nonce, the kid as additional data); the result is nonce || ciphertext.
func sealPrivate(kek []byte, kid string, pkcs8 []byte, rand io.Reader) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(pkcs8)+aead.Overhead())
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, fmt.Errorf("authsvc: nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, pkcs8, []byte(sealPrefix+kid)), nil
}

// openPrivate decrypts what [sealPrivate] sealed and parses the private key.
func openPrivate(kek []byte, kid string, sealed []byte) (crypto.Signer, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("authsvc: sealed private key too short")
	}
	pt, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(sealPrefix+kid))
	if err != nil {
		return nil, errors.New("authsvc: a private signing key does not decrypt: wrong key-encryption key or corrupted store")
	}
	k, err := x509.ParsePKCS8PrivateKey(pt)
	clear(pt)
	if err != nil {
		return nil, errors.New("authsvc: a private signing key does not parse")
	}
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("authsvc: signing key not on P-256")
		}
		return k, nil
	default:
		return nil, errors.New("authsvc: unsupported signing key type")
	}
}

func newAEAD(kek []byte) (cipher.AEAD, error) {
	if len(kek) != KEKSize {
		return nil, errKEK
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("authsvc: %w", err)
	}
	return cipher.NewGCM(block)
}

// newSigningKey generates a key pair for alg, encrypted under kek, with a random
// kid, in state next.
func newSigningKey(alg token.Algorithm, kek []byte, rand io.Reader, now time.Time) (SigningKey, error) {
	var priv crypto.Signer
	switch alg {
	case token.EdDSA:
		_, k, err := ed25519.GenerateKey(rand)
		if err != nil {
			return SigningKey{}, fmt.Errorf("authsvc: generate key: %w", err)
		}
		priv = k
	case token.ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand)
		if err != nil {
			return SigningKey{}, fmt.Errorf("authsvc: generate key: %w", err)
		}
		priv = k
	default:
		return SigningKey{}, errors.New("authsvc: unsupported algorithm")
	}
	var idBytes [16]byte
	if _, err := io.ReadFull(rand, idBytes[:]); err != nil {
		return SigningKey{}, fmt.Errorf("authsvc: key id: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(idBytes[:])
	pub, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return SigningKey{}, fmt.Errorf("authsvc: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return SigningKey{}, fmt.Errorf("authsvc: %w", err)
	}
	sealed, err := sealPrivate(kek, kid, pkcs8, rand)
	clear(pkcs8)
	if err != nil {
		return SigningKey{}, err
	}
	return SigningKey{
		ID:               kid,
		Algorithm:        string(alg),
		State:            KeyNext,
		Public:           pub,
		EncryptedPrivate: sealed,
		CreatedAt:        now,
	}, nil
}

// publicKey returns the token.Key of a stored signing key.
func publicKey(k *SigningKey) (token.Key, error) {
	pub, err := x509.ParsePKIXPublicKey(k.Public)
	if err != nil {
		return token.Key{}, errors.New("authsvc: stored public key does not parse")
	}
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if k.Algorithm != string(token.EdDSA) {
			return token.Key{}, errors.New("authsvc: stored key does not match its algorithm")
		}
	case *ecdsa.PublicKey:
		if k.Algorithm != string(token.ES256) || p.Curve != elliptic.P256() {
			return token.Key{}, errors.New("authsvc: stored key does not match its algorithm")
		}
	default:
		return token.Key{}, errors.New("authsvc: unsupported stored key")
	}
	return token.Key{ID: k.ID, Algorithm: token.Algorithm(k.Algorithm), Public: pub}, nil
}

// lifecycle holds the schedule of DESIGN.md §4.
type lifecycle struct {
	alg            token.Algorithm
	publishLead    time.Duration // a key is published this long before it signs
	rotationPeriod time.Duration // a key signs this long
	maxLifetime    time.Duration
	skew           time.Duration
	kek            []byte
	rand           io.Reader
}

// retention is how long a key stays published after it stopped signing: the
// longest token it signed expires maxLifetime after that; a verifier accepts
// it until exp plus skew by its own clock, which may lag ours by the skew; a
// process with a stale view may have signed up to keyReloadInterval later.
func (l *lifecycle) retention() time.Duration {
	return l.maxLifetime + verifierMargin(l.skew) + keyReloadInterval
}

// verifierMargin is how long after a token's exp, by our clock, a verifier may
// still accept it: the skew it allows, plus the skew its clock may lag ours.
// Keys and revocation records stay published for this long after the last
// token they concern has expired.
func verifierMargin(skew time.Duration) time.Duration { return 2 * skew }

// step is one idempotent lifecycle step at now: it removes retired keys whose
// time has come, promotes the next key when the active one is due (or rotate
// is set), and makes sure a next key exists. On a fresh store the first key
// signs at once: no verifier can hold an older key set, so there is nobody to
// publish ahead to.
//
// rotate is an operator's request to rotate now. It promotes the next key even
// when it has been published for less than publishLead: the operator asked, and
// the key is in the published set (verifiers that miss it fetch again on the
// unknown kid). When there is no next key, one is created and promoted in the
// same step.
func (l *lifecycle) step(keys []SigningKey, now time.Time, rotate bool) ([]SigningKey, error) {
	out := make([]SigningKey, 0, len(keys)+2)
	for i := range keys {
		k := keys[i]
		if k.Algorithm != string(l.alg) {
			return nil, errors.New("authsvc: the store holds signing keys of another algorithm; changing the algorithm needs a fresh store")
		}
		if k.State != KeyNext && k.State != KeyActive && k.State != KeyRetired {
			return nil, errors.New("authsvc: stored signing key in an unknown state")
		}
		if k.State == KeyRetired && !k.RemoveAt.After(now) {
			continue // removed
		}
		out = append(out, k)
	}
	// Exactly one active and at most one next: keep the newest, retire the rest.
	slices.SortFunc(out, func(a, b SigningKey) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	active, next, retired := -1, -1, 0
	for i := range out {
		switch out[i].State {
		case KeyActive:
			if active < 0 {
				active = i
			} else {
				l.retire(&out[i], now)
				retired++
			}
		case KeyNext:
			if next < 0 {
				next = i
			} else {
				l.retire(&out[i], now)
				retired++
			}
		case KeyRetired:
			retired++
		}
	}
	fresh := active < 0 && next < 0 && retired == 0
	if next < 0 {
		k, err := newSigningKey(l.alg, l.kek, l.rand, now)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
		next = len(out) - 1
	}
	published := !now.Before(out[next].CreatedAt.Add(l.publishLead))
	var promote bool
	if active < 0 {
		promote = fresh || published || rotate
	} else {
		promote = rotate || (published && !now.Before(out[active].RetireAt))
	}
	if promote && rotate && len(out) >= token.MaxKeys {
		// The key a rotation creates would not fit in the published set (a
		// JWKS holds at most token.MaxKeys keys; beyond it neither GetKeys nor
		// verifiers accept the set). Refuse the operator's rotation until
		// retired keys are removed.
		return nil, errTooManySigningKeys
	}
	if promote {
		if active >= 0 {
			l.retire(&out[active], now)
		}
		active = next
		a := &out[active]
		a.State = KeyActive
		a.ActivateAt = now
		a.RetireAt = now.Add(l.rotationPeriod)
		a.RemoveAt = a.RetireAt.Add(l.retention())
		k, err := newSigningKey(l.alg, l.kek, l.rand, now)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
		next = len(out) - 1
	}
	// Plan: the next key takes over when the active key is due, but never before
	// it has been published for publishLead; until then the active key signs on.
	n := &out[next]
	due := n.CreatedAt.Add(l.publishLead)
	if active >= 0 {
		a := &out[active]
		if a.RetireAt.After(due) {
			due = a.RetireAt
		}
		a.RetireAt = due
		a.RemoveAt = due.Add(l.retention())
	}
	n.ActivateAt = due
	n.RetireAt = due.Add(l.rotationPeriod)
	n.RemoveAt = n.RetireAt.Add(l.retention())
	return out, nil
}

func (l *lifecycle) retire(k *SigningKey, now time.Time) {
	if k.State != KeyRetired {
		k.RetireAt = now
	}
	k.State = KeyRetired
	k.RemoveAt = k.RetireAt.Add(l.retention())
}

// keyView is a process's view of the signing keys: what it publishes and
// verifies with, and the key it signs with. Immutable once built.
type keyView struct {
	loadedAt time.Time
	keys     []token.Key // next, active and retired keys not yet due for removal
	keySet   *token.KeySet
	signer   *token.Signer // nil when no key may sign
	signKey  SigningKey    // the stored record of signer
}

// signerCache keeps decrypted private keys by kid, so that a view reload does
// not decrypt again.
type signerCache struct {
	mu sync.Mutex
	m  map[string]crypto.Signer
}

func (c *signerCache) get(kek []byte, k *SigningKey) (crypto.Signer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[k.ID]; ok {
		return s, nil
	}
	s, err := openPrivate(kek, k.ID, k.EncryptedPrivate)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]crypto.Signer{}
	}
	c.m[k.ID] = s
	return s, nil
}

// forget drops every cached key whose kid is not in keep.
func (c *signerCache) forget(keep map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.m {
		if !keep[id] {
			delete(c.m, id)
		}
	}
}

// buildView builds the view of keys at now: every key not yet due for removal
// is published; the active key signs unless it is not yet due to activate.
func buildView(ctx context.Context, keys []SigningKey, now time.Time, kek []byte, cache *signerCache) (*keyView, error) {
	_ = ctx
	v := &keyView{loadedAt: now}
	keep := map[string]bool{}
	slices.SortFunc(keys, func(a, b SigningKey) int { return b.CreatedAt.Compare(a.CreatedAt) })
	for i := range keys {
		k := &keys[i]
		if k.State == KeyRetired && !k.RemoveAt.After(now) {
			continue
		}
		pk, err := publicKey(k)
		if err != nil {
			return nil, err
		}
		v.keys = append(v.keys, pk)
		if k.State == KeyActive && v.signer == nil {
			priv, err := cache.get(kek, k)
			if err != nil {
				return nil, err
			}
			keep[k.ID] = true
			if v.signer, err = token.NewSigner(pk, priv); err != nil {
				return nil, fmt.Errorf("authsvc: signing key %s: %w", k.ID, err)
			}
			v.signKey = *k
		}
	}
	cache.forget(keep)
	if len(v.keys) > 0 {
		var err error
		v.keySet, err = token.NewKeySet(v.keys[0].Algorithm, v.keys)
		if err != nil {
			return nil, fmt.Errorf("authsvc: own key set does not validate: %w", err)
		}
	}
	return v, nil
}
