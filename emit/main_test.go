package emit

import (
	"testing"

	"github.com/vigil-sec/vigil/internal/testkit"
)

// TestMain fails the run when a test leaves goroutines behind.
func TestMain(m *testing.M) { testkit.MainCheckingGoroutines(m) }
