package secret

import (
	"fmt"
	"io/fs"
	"os"
)

// FileModeError reports a secret or key file that users other than Vigil's
// own may read or write.
type FileModeError struct {
	Path string
	Mode fs.FileMode
	// Who says who has access: "other users" or "its group".
	Who string
}

func (e *FileModeError) Error() string {
	return fmt.Sprintf("%s has mode %04o: %s can read or change it; run chmod 600 %s "+
		"(or chmod 640 with the file owned by root and a group only Vigil's user is in)",
		e.Path, e.Mode.Perm(), e.Who, e.Path)
}

// CheckFileMode returns a *FileModeError when path grants any access to
// other users, or to its group while it is owned by the user running Vigil
// (who needs no group to read it). A file owned by someone else (root) may
// grant its group read access: that is how a group gives Vigil's user
// access without owning the file. Files that cannot be inspected (missing
// ones, or on systems without Unix modes) return nil: reading them reports
// the problem.
func CheckFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	perm := fi.Mode().Perm()
	switch {
	case !unixModes:
		return nil
	case perm&0o007 != 0:
		return &FileModeError{Path: path, Mode: perm, Who: "other users"}
	case perm&0o070 != 0 && ownedBySelf(fi):
		return &FileModeError{Path: path, Mode: perm, Who: "its group"}
	}
	return nil
}
