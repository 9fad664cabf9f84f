// Package faults holds callsign's fault-injection tests: real callsignd
// processes on loopback, started, killed and restarted under traffic through
// verifiers built with the interceptors. The quick ones run with go test; the
// long ones need CALLSIGN_SOAK=1 (make soak). See docs/SECURITY.md.
package faults
