// Package conformance locates the external conformance vectors (Wycheproof's
// JOSE files and the JOSE cookbook) for the tests that run them. The vectors
// are read where they are and never copied into the repository.
package conformance

import (
	"os"
	"path/filepath"
	"testing"
)

// EnvDir names the environment variable that points at the vectors' folder.
const EnvDir = "CALLSIGN_CONFORMANCE_DIR"

// Dir returns the folder of the vectors: $CALLSIGN_CONFORMANCE_DIR, else
// <repository root>/../shared/conformance, the repository root being the
// nearest directory above the working directory that holds a go.mod. It skips
// tb when the folder (its wycheproof/OVERRIDES.json) is absent.
func Dir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv(EnvDir)
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			tb.Fatal(err)
		}
		for root := wd; ; root = filepath.Dir(root) {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				dir = filepath.Join(root, "..", "shared", "conformance")
				break
			}
			if filepath.Dir(root) == root {
				tb.Skip("no go.mod above the working directory")
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "wycheproof", "OVERRIDES.json")); err != nil { //nolint:gosec // G703: the folder is the developer's own setting, read by tests only
		tb.Skipf("conformance folder %s absent", dir)
	}
	return dir
}
