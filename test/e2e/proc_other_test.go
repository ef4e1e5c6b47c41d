//go:build !linux

package e2e

import "os/exec"

// dieWithParent does nothing where the kernel offers no parent-death
// signal; test cleanups still kill every process they started.
func dieWithParent(*exec.Cmd) {}
