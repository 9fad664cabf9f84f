//go:build !unix

package authsvc

import "time"

// processCPU is unknown here: CPU figures read as zero.
func processCPU() time.Duration { return 0 }
