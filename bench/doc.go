// Package bench holds callsign's benchmark suite: callsign side by side with
// what users would otherwise pick, measured in one run so that the ratios
// between them mean something on any machine.
//
// The benchmarks live in this package's test files; run them all, several
// rounds, and print the table of ratios and targets with
//
//	make bench
//
// (that is go run ./bench/cmd/benchtable, which runs the compiled benchmarks
// in interleaved rounds and writes the raw results in the format benchstat
// reads). docs/PERFORMANCE.md explains the method and the figures.
//
// # What is measured
//
//   - Unary and Stream: one RPC (a server stream of one message) over loopback
//     TCP and over bufconn, with the server behind: nothing (bare); a
//     pass-through interceptor; grpc-go's authz static policy; a naive
//     interceptor that parses and verifies the JWT with jwx v2 or golang-jwt v5
//     on every call; callsign warm (verified-token cache hit), cold (a token
//     never seen before on every call) and central (AuthService.Verify on
//     every call). Every variant but bare carries the same metadata, attached
//     by callsign's client interceptor.
//   - ServerInterceptor: the server interceptor alone, called directly.
//   - Verify: a token never seen before, verified by callsign's strict core,
//     jwx and golang-jwt, next to one raw ed25519.Verify (and sign + verify).
//   - Parallel: throughput with parallel clients on one connection.
//   - Load: p50 and p99 latency at a fixed offered load (open loop).
//   - IssueToken and IssueLoad: callsignd's issuance over loopback gRPC, with
//     private_key_jwt and a client secret, throughput and latency at a fixed
//     rate.
//   - Client, RefreshHerd: the client interceptor alone with a live token
//     source (IssueToken calls on the hot path), and 1,000 concurrent cold
//     callers (IssueToken calls per herd).
//   - CacheMemory: the heap kept by the verified-token cache after 10⁶
//     distinct tokens.
//   - TokenSize: the warm and cold RPC with the issued token and with a
//     shorter one.
//
// TestBenchmarksSmoke runs every benchmark once at a tiny size, so that the
// suite is exercised by go test.
package bench
