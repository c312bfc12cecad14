package gateway_test

import (
	"os"
	"strconv"
	"syscall"
)

// fdOpen reports whether this process holds descriptor fd.
func fdOpen(fd int) bool {
	_, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return err == nil
}

func closeFD(fd int) { _ = syscall.Close(fd) }
