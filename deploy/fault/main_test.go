package fault_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/herald-gw/herald/internal/testenv"
)

var heraldBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "herald-fault-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if heraldBin, err = testenv.BuildHerald(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
