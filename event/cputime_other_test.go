//go:build !unix

package event

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
