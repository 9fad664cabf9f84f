//go:build !unix

package interceptor

import "time"

// cliCPUTime is not measured on this platform.
func cliCPUTime() time.Duration { return 0 }
