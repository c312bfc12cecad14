package wscore

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the package's tests leave no goroutine behind: every
// Core they start is closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
