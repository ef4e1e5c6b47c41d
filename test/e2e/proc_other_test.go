//go:build !linux

package e2e

import (
	"os/exec"
	"time"
)

// dieWithParent does nothing where the kernel offers no parent-death
// signal; test cleanups still kill every process they started.
func dieWithParent(*exec.Cmd) {}

// residentBytes is 0 where /proc is not available.
func residentBytes(*proc) int64 { return 0 }

// machineBusy is 0 where /proc is not available.
func machineBusy() time.Duration { return 0 }
