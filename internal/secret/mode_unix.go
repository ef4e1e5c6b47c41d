//go:build unix

package secret

import (
	"io/fs"
	"os"
	"syscall"
)

const unixModes = true

func ownedBySelf(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || int(st.Uid) == os.Geteuid()
}
