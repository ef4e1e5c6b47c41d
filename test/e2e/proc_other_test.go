//go:build !linux

package e2e

import "os/exec"

// dieWithParent does nothing where the kernel offers no parent-death
// signal; test cleanups still kill every process they started.
func dieWithParent(*exec.Cmd) {}

// residentBytes is 0 where /proc is not available.
func residentBytes(*proc) int64 { return 0 }
