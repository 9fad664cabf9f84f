// Command callsignd is callsign's token server: it issues short-lived signed
// service tokens (and user-context tokens) to registered service accounts,
// rotates its signing keys on a schedule, publishes them with the revocation
// state, and lets operators manage accounts, grants and revocations.
//
// # Usage
//
// A development server with zero set-up, on loopback only:
//
//	callsignd --dev
//
// A production server:
//
//	callsignd --data-dir /var/lib/callsign --kek-file /etc/callsign/kek \
//	    --config /etc/callsign/callsign.yaml \
//	    --grpc-addr :7443 --http-addr :7080 \
//	    --tls-cert tls.crt --tls-key tls.key [--tls-client-ca clients.pem]
//
// callsignd serves two listeners:
//
//   - gRPC (--grpc-addr, default 127.0.0.1:7443): callsign.v1.AuthService,
//     callsign.v1.AdminService, grpc.health.v1.Health (SERVING once a signing
//     key is published, NOT_SERVING during shutdown) and server reflection, so
//     that grpcurl lists and calls the services. Requests are limited to
//     64 KiB, header lists to 64 KiB.
//   - HTTP (--http-addr, default 127.0.0.1:7080): GET /.well-known/jwks.json
//     (the public signing keys, the same JWKS as GetKeys, for any JOSE
//     library, Envoy or Istio), GET /healthz (liveness), GET /readyz (200 once
//     serving, 503 before and during shutdown) and GET /metrics (Prometheus,
//     from callsignd's own registry: callsignd_requests_total{method,code},
//     callsignd_request_duration_seconds{method},
//     callsignd_tokens_issued_total{type}, the decisions of the interceptor
//     guarding callsignd (callsign_server_*), the age of its key set
//     (callsign_keys_*), and the Go and process collectors).
//
// callsign runs on itself: AdminService (scope callsign.admin) and
// AuthService.Verify (scope callsign.verify) require a service token for
// audience "callsign", verified by callsign's own server interceptor against
// callsignd's own keys, loaded in process. IssueToken and GetKeys are public,
// as their rules in auth.proto say; health and reflection are made public by
// explicit rules in code. callsignd refuses to start when a registered method
// has no rule.
//
// Port 0 picks a free port. The addresses actually bound are logged in the
// "callsignd serving" line and, with --ready-file, written as JSON:
//
//	{"pid": 4242, "grpc_addr": "127.0.0.1:41234", "http_addr": "127.0.0.1:41235",
//	 "tls": false, "issuer": "callsign", "data_dir": "/abs/.callsign-dev",
//	 "credentials_dir": "/abs/.callsign-dev/credentials"}
//
// The file is written atomically once the server is serving and removed on a
// clean shutdown.
//
// # Flags
//
//	--dev                 development mode (below)
//	--config FILE         YAML configuration (issuer, algorithm, lifetimes,
//	                      rotation schedule, accounts with keys and grants),
//	                      applied at every start, idempotently
//	--data-dir DIR        holds callsign.db (SQLite); required without --dev
//	--grpc-addr ADDR      gRPC listen address
//	--http-addr ADDR      HTTP listen address
//	--ready-file FILE     write the bound addresses here once serving
//	--kek-file FILE       the key-encryption key (32 bytes, raw or base64;
//	                      mode 0600) that encrypts signing keys at rest
//	--tls-cert, --tls-key serve gRPC and HTTP over TLS (1.2 or later); a
//	                      renewed pair is picked up without a restart
//	                      (the files are checked at most every 10 s)
//	--tls-client-ca FILE  require client certificates from these CAs on gRPC
//	                      (mTLS); HTTP asks for none, so probes and JWKS
//	                      fetchers need no certificate
//	--allow-plaintext     allow gRPC without TLS on a non-loopback address,
//	                      for deployments behind a mesh that provides mTLS
//	--log-level LEVEL     debug, info (default), warn or error
//	--log-format FORMAT   text (default) or json, on standard error
//	--audit-allowed       log an audit record for every allowed call to
//	                      AdminService and Verify (denials are always logged)
//	--issuer ID           the issuer id (overrides the configuration)
//	--token-lifetime, --max-token-lifetime, --rotation-period,
//	--publish-lead, --refresh-hint DURATION
//	                      override the configuration, for example to show a
//	                      stream ending when its token expires, or a key
//	                      rotation during traffic, in a short demo
//	--shutdown-timeout D  how long a graceful shutdown waits (default 10s)
//
// # Environment
//
// Every flag --x-y can also be set as CALLSIGN_X_Y (for example
// CALLSIGN_GRPC_ADDR, CALLSIGN_DATA_DIR); a flag on the command line wins.
// CALLSIGN_KEK holds the key-encryption key itself, base64-encoded, as an
// alternative to --kek-file; give one or the other.
//
// # Development mode
//
// callsignd --dev needs nothing else. It listens on loopback only (a
// non-loopback address is refused) and keeps everything in --data-dir,
// default ./.callsign-dev (mode 0700):
//
//	callsign.db                 the SQLite database (accounts, keys, revocations)
//	kek                         a generated key-encryption key (mode 0600,
//	                            logged with a loud warning); not used when
//	                            --kek-file or CALLSIGN_KEK is given
//	credentials/<account>.jwk   the Ed25519 private key (a JWK, mode 0600) of
//	                            each example account; its public key is
//	                            registered with the account
//
// The example accounts are those of the shop demo (examples/shop): gateway
// (may assert users of tenants acme and globex; audience orders with scope
// orders.place), orders (pricing: pricing.quote; billing: billing.charge;
// inventory: inventory.watch), pricing, billing, inventory, rogue (pricing
// without scopes, billing with billing.charge although it is not orders), and
// the operator account callsign-admin (audience callsign, scopes
// callsign.admin and callsign.verify) that the callsign CLI uses. Restarts
// keep existing keys and files; an account declared in --config is left as
// the file declares it.
//
// # Signals and exit status
//
// SIGINT or SIGTERM starts a graceful shutdown: health and /readyz report not
// serving, open calls may finish within --shutdown-timeout, then the rest are
// cut off and the key lifecycle stops. A second signal ends the process at
// once. The exit status is 0 after a clean shutdown, 1 when start-up or a
// listener failed, and 2 for bad flags, environment or configuration.
//
// # Logs
//
// Structured (log/slog) on standard error. callsignd never logs a token, a
// client secret, an assertion, a private key or the key-encryption key; the
// handler also redacts attributes named after credentials, should one slip
// through.
package main
