package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// issueRequests returns n IssueToken requests orders → test: with a client
// secret, or each with its own private_key_jwt assertion (single use),
// signed ahead so that the client's signing is not counted.
func (f *fixture) issueRequests(tb testing.TB, n int, secret bool) []*callsignv1.IssueTokenRequest {
	tb.Helper()
	reqs := make([]*callsignv1.IssueTokenRequest, n)
	if secret {
		cred := &callsignv1.IssueTokenRequest_ClientSecret{ClientSecret: &callsignv1.ClientSecret{AccountId: caller, Secret: f.ordersSecret}}
		for i := range reqs {
			reqs[i] = &callsignv1.IssueTokenRequest{Credential: cred, Audience: audience}
		}
		return reqs
	}
	var wg sync.WaitGroup
	var failed atomic.Bool
	workers := runtime.GOMAXPROCS(0)
	now := time.Now()
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				a, err := token.SignAssertion(f.ordersKey, f.ordersKID, caller, issuer, now, 55*time.Second)
				if err != nil {
					failed.Store(true)
					return
				}
				reqs[i] = &callsignv1.IssueTokenRequest{
					Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: a},
					Audience:   audience,
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		tb.Fatal("signing assertions failed")
	}
	return reqs
}

var issueCases = []struct {
	name   string
	secret bool
	memory bool
}{
	{"private_key_jwt", false, false},
	{"secret", true, false},
	{"private_key_jwt/memory-store", false, true},
}

// IssueToken: callsignd's IssueToken over loopback TCP (callsignd behind its
// own interceptor, SQLite store unless named), called by 4×GOMAXPROCS
// goroutines on one connection. Assertions are signed before the clock
// starts; client and server share the machine's cores.
func BenchmarkIssueToken(b *testing.B) {
	for _, c := range issueCases {
		b.Run(c.name, func(b *testing.B) {
			f := getFixture(b)
			if c.memory {
				f = getMemFixture(b)
			}
			client := callsignv1.NewAuthServiceClient(f.dialAuth(b))
			reqs := f.issueRequests(b, b.N+1, c.secret)
			if _, err := client.IssueToken(context.Background(), reqs[b.N]); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			b.SetParallelism(4)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if _, err := client.IssueToken(ctx, reqs[next.Add(1)-1]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			per := cpu.report(b, b.N)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			// What 2 idle cores would sustain at this CPU cost per token,
			// client included.
			b.ReportMetric(2*float64(time.Second)/float64(per), "tokens/s-2cores")
		})
	}
}

// issueRate is the offered load of BenchmarkIssueLoad, in tokens per second.
const issueRate = 1000

// IssueLoad: p50 and p99 latency of IssueToken over loopback TCP at a fixed
// offered load (open loop). One op is the whole run.
func BenchmarkIssueLoad(b *testing.B) {
	dur := sized(2*time.Second, 20*time.Millisecond)
	for _, c := range issueCases[:2] {
		b.Run(fmt.Sprintf("%drps/%s", issueRate, c.name), func(b *testing.B) {
			f := getFixture(b)
			client := callsignv1.NewAuthServiceClient(f.dialAuth(b))
			n := max(1, int(float64(issueRate)*dur.Seconds()))
			reqs := f.issueRequests(b, n+1, c.secret)
			if _, err := client.IssueToken(context.Background(), reqs[n]); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			res := openLoop(issueRate, dur, 1024, func(ctx context.Context) error {
				_, err := client.IssueToken(ctx, reqs[next.Add(1)-1])
				return err
			})
			res.report(b, time.Millisecond, "ms")
		})
	}
}
