package quickstart_test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeShowsTheCode checks that README.md shows the quickstart's code
// exactly as it is.
func TestReadmeShowsTheCode(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"server/main.go", "client/main.go"} {
		code, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), "```go\n"+string(code)+"```\n") {
			t.Errorf("README.md does not show examples/quickstart/%s as it is: copy the file into its go block", f)
		}
	}
}
