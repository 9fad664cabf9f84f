// Package authsvc implements callsignd's AuthService and AdminService: service
// accounts and their credentials, token issuance, central verification,
// revocation, the signing key lifecycle and the storage behind them.
//
// A [Service] is built by [New] on a [Store] ([OpenSQLite] by default,
// [NewMemoryStore] for tests), a key-encryption key ([LoadKEK]) and a [Config]
// ([ParseConfig], [LoadConfig], [DefaultConfig]). It exposes the gRPC servers
// ([Service.AuthServer], [Service.AdminServer]), the JWKS over HTTP
// ([Service.JWKSHandler]) and the key lifecycle ([Service.Run], [Service.Tick],
// [Service.RotateNow]).
package authsvc
