// Package attack holds callsign's hostile-input campaign: a catalogue of
// attacks written as data and run against a real grpc-go server built with
// the server interceptors and the test service (unary and streaming RPCs), the
// external conformance vectors sent as bearer tokens, and fuzz targets for the
// parsers of network input that live outside the packages' own tests.
//
// The package has no exported API; everything is in its tests. See
// docs/SECURITY.md for the defence each test demonstrates.
package attack
