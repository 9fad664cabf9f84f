package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// BenchmarkWarmStart reports the time from exec of callsignd --dev on an
// existing data directory (keys to decrypt, configuration to re-apply) to the
// first successful GetKeys.
func BenchmarkWarmStart(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "data")
	coldStart(b, dir) // create the data directory
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		total += coldStart(b, dir)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/start")
}

// BenchmarkIssueTokenProcess issues service tokens with private_key_jwt from
// parallel clients over one loopback connection to a callsignd --dev process:
// assertion signing on the client, gRPC, and the server's whole IssueToken
// path including SQLite's single-use record of the assertion id.
func BenchmarkIssueTokenProcess(b *testing.B) {
	p := startDev(b, filepath.Join(b.TempDir(), "data"), "--log-level", "warn")
	client := callsignv1.NewAuthServiceClient(p.conn(b))
	issue := p.issuer(b, "orders")
	ctx := rpcContext(b)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := issue(ctx, client, "billing"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tokens/s")
	if code := p.stop(b, syscall.SIGTERM); code != 0 {
		b.Fatalf("exit code %d", code)
	}
	_ = os.RemoveAll(p.dataDir)
}
