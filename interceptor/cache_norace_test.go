//go:build !race

package interceptor

// raceEnabled tells long tests to shrink under the race detector.
const raceEnabled = false
