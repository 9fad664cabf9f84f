package interceptor

import (
	"container/list"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// EdgeUser is a user that the edge service has authenticated with whatever it
// already uses, to be asserted to the services behind it.
type EdgeUser struct {
	// ID is the user's id: 1 to 256 printable ASCII characters without spaces.
	ID string
	// TenantID is the user's tenant, same charset. Required.
	TenantID string
	// Roles are the user's roles: at most 32, each 1 to 128 characters of
	// [A-Za-z0-9._:/-]. Their order does not matter.
	Roles []string
}

// Defaults of [UserTokenSource].
const (
	// DefaultUserTokenCacheSize bounds how many user tokens are cached.
	DefaultUserTokenCacheSize = 10000
	// DefaultUserTokenMaxAge bounds how long a user token is reused.
	DefaultUserTokenMaxAge = time.Minute

	maxUserRoles     = 32
	maxUserIDLength  = 256
	maxRoleLength    = 128
	maxUserFlightsIn = 1024 // distinct users waiting for a token at once
)

// UserTokenOption configures [NewUserTokenSource].
type UserTokenOption func(*userTokenConfig)

type userTokenConfig struct {
	size         int
	maxAge       time.Duration
	lifetime     time.Duration
	issueTimeout time.Duration
	clock        Clock
	rand         func() float64
}

// WithUserTokenCacheSize bounds the cache (default
// [DefaultUserTokenCacheSize]); the least recently used token goes first. 0
// turns caching off.
func WithUserTokenCacheSize(n int) UserTokenOption {
	return func(c *userTokenConfig) { c.size = n }
}

// WithUserTokenMaxAge bounds how long a token is reused (default
// [DefaultUserTokenMaxAge]); it is never reused beyond 50 % ± 10 % of its
// lifetime either.
func WithUserTokenMaxAge(d time.Duration) UserTokenOption {
	return func(c *userTokenConfig) { c.maxAge = d }
}

// WithUserTokenLifetime asks callsignd for user tokens of this lifetime (whole
// seconds, at least 10 s); default callsignd's.
func WithUserTokenLifetime(d time.Duration) UserTokenOption {
	return func(c *userTokenConfig) { c.lifetime = d }
}

// WithUserTokenClock replaces the system clock, for tests.
func WithUserTokenClock(clock Clock) UserTokenOption {
	return func(c *userTokenConfig) {
		if clock != nil {
			c.clock = clock
		}
	}
}

// UserTokenSource obtains user-context tokens (typ user+jwt) at the edge: the
// service that authenticated an end user asks callsignd, with its own
// credential, for a token that asserts the user to the services behind it.
// Its account must be allowed to assert users of the user's tenant.
//
// Tokens are cached per (user, tenant, set of roles), briefly
// ([WithUserTokenMaxAge]) and in bounded number ([WithUserTokenCacheSize]);
// concurrent requests for the same user share one IssueToken call. Failures
// are not cached. It is safe for concurrent use. Put a token on a call with
// [WithUserToken].
type UserTokenSource struct {
	cfg userTokenConfig
	iss *tsIssuer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	lru     *list.List // of *userCacheEntry, most recent first
	items   map[string]*list.Element
	flights map[string]*tsFlight
}

type userCacheEntry struct {
	key   string
	tok   *cachedToken
	until time.Time
}

// NewUserTokenSource returns a [UserTokenSource] that calls IssueToken through
// client with cred. Close it when done.
func NewUserTokenSource(client IssueTokenClient, cred Credential, opts ...UserTokenOption) (*UserTokenSource, error) {
	if client == nil || cred == nil {
		return nil, errors.New("interceptor: NewUserTokenSource: nil client or credential")
	}
	cfg := userTokenConfig{
		size:         DefaultUserTokenCacheSize,
		maxAge:       DefaultUserTokenMaxAge,
		issueTimeout: DefaultIssueTimeout,
		clock:        SystemClock,
		rand:         rand.Float64,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.size < 0 || cfg.maxAge < 0 || cfg.lifetime < 0 || cfg.lifetime%time.Second != 0 {
		return nil, errors.New("interceptor: NewUserTokenSource: invalid option")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &UserTokenSource{
		cfg:     cfg,
		iss:     &tsIssuer{client: client, cred: cred, clock: cfg.clock, rand: cfg.rand, timeout: cfg.issueTimeout},
		ctx:     ctx,
		cancel:  cancel,
		lru:     list.New(),
		items:   make(map[string]*list.Element),
		flights: make(map[string]*tsFlight),
	}, nil
}

var (
	errInvalidUser   = status.Error(codes.InvalidArgument, "callsign: invalid user context")
	errTooManyUsers  = errors.New("interceptor: too many user token requests in progress")
	errUserSrcClosed = errors.New("interceptor: user token source closed")
)

// UserToken returns a user-context token for u. It fails with InvalidArgument
// when u breaks the limits documented on [EdgeUser] (nothing is sent then),
// and with Unavailable (TOKEN_UNAVAILABLE) when no token can be obtained; the
// Unavailable error wraps an [*IssueError] that tells why.
func (s *UserTokenSource) UserToken(ctx context.Context, u EdgeUser) (string, error) {
	roles, ok := checkEdgeUser(u)
	if !ok {
		return "", errInvalidUser
	}
	key := userCacheKey(u.ID, u.TenantID, roles)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", tokenUnavailable(errUserSrcClosed)
	}
	now := s.cfg.clock.Now()
	if el, ok := s.items[key]; ok {
		ent := el.Value.(*userCacheEntry) //nolint:forcetypeassert // only *userCacheEntry is stored
		if now.Before(ent.until) {
			s.lru.MoveToFront(el)
			s.mu.Unlock()
			return ent.tok.token, nil
		}
		s.lru.Remove(el)
		delete(s.items, key)
	}
	f := s.flights[key]
	if f == nil {
		if len(s.flights) >= maxUserFlightsIn {
			s.mu.Unlock()
			return "", tokenUnavailable(errTooManyUsers)
		}
		f = &tsFlight{done: make(chan struct{})}
		s.flights[key] = f
		req := &callsignv1.IssueTokenRequest{
			User: &callsignv1.UserContext{UserId: u.ID, TenantId: u.TenantID, Roles: roles},
		}
		if s.cfg.lifetime > 0 {
			req.Lifetime = durationpb.New(s.cfg.lifetime)
		}
		s.wg.Add(1)
		go s.fetch(key, req, f)
	}
	s.mu.Unlock()

	select {
	case <-f.done:
		if f.err != nil {
			return "", tokenUnavailable(f.err)
		}
		return f.tok.token, nil
	case <-ctx.Done():
		return "", status.FromContextError(ctx.Err()).Err()
	}
}

func (s *UserTokenSource) fetch(key string, req *callsignv1.IssueTokenRequest, f *tsFlight) {
	defer s.wg.Done()
	tok, err := s.iss.issue(s.ctx, req, callsignv1.TokenType_TOKEN_TYPE_USER)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.flights, key)
	f.tok, f.err = tok, err
	close(f.done)
	if err != nil || s.closed || s.cfg.size == 0 {
		return
	}
	until := tok.refreshAt
	if maxAge := tok.obtained.Add(s.cfg.maxAge); maxAge.Before(until) {
		until = maxAge
	}
	s.items[key] = s.lru.PushFront(&userCacheEntry{key: key, tok: tok, until: until})
	for s.lru.Len() > s.cfg.size {
		last := s.lru.Back()
		s.lru.Remove(last)
		delete(s.items, last.Value.(*userCacheEntry).key) //nolint:forcetypeassert // only *userCacheEntry is stored
	}
}

// Len is the number of cached tokens.
func (s *UserTokenSource) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

// Close cancels the IssueToken calls in progress, waits for them and drops
// the cache. UserToken fails after Close.
func (s *UserTokenSource) Close() error {
	s.mu.Lock()
	s.closed = true
	s.lru.Init()
	clear(s.items)
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// WithUserToken returns ctx with token as the outgoing x-user-token, for the
// calls that the edge makes on the user's behalf. The client interceptors of
// the services behind the edge forward it unchanged. Call it once per context:
// servers refuse a call that carries two user tokens.
func WithUserToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, MDUserToken, token)
}

// checkEdgeUser checks u against the limits of IssueToken and returns its
// roles sorted and without duplicates.
func checkEdgeUser(u EdgeUser) ([]string, bool) {
	if !printableID(u.ID) || !printableID(u.TenantID) || len(u.Roles) > maxUserRoles {
		return nil, false
	}
	for _, r := range u.Roles {
		if !validRole(r) {
			return nil, false
		}
	}
	roles := slices.Clone(u.Roles)
	slices.Sort(roles)
	return slices.Compact(roles), true
}

func printableID(s string) bool {
	if len(s) == 0 || len(s) > maxUserIDLength {
		return false
	}
	for i := range len(s) {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func validRole(s string) bool {
	if len(s) == 0 || len(s) > maxRoleLength {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '/', c == '-':
		default:
			return false
		}
	}
	return true
}

// userCacheKey encodes the fields with length prefixes, so that no two users
// share a key whatever their ids contain.
func userCacheKey(id, tenant string, roles []string) string {
	var b strings.Builder
	field := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	field(id)
	field(tenant)
	for _, r := range roles {
		field(r)
	}
	return b.String()
}
