package testenv

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PeerFD returns the descriptor number, in this process, of the server side
// of c: the socket whose local address is c's remote address and whose peer
// is c's local address. It works for IPv4 loopback connections whose server
// runs in the test's process, and reports -1 when there is none.
func PeerFD(c net.Conn) int {
	local, ok1 := c.RemoteAddr().(*net.TCPAddr)
	remote, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return -1
	}
	want := tcpHex(local) + " " + tcpHex(remote)
	f, err := os.Open("/proc/self/net/tcp")
	if err != nil {
		return -1
	}
	defer f.Close()
	inode := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && fields[1]+" "+fields[2] == want {
			inode = fields[9]
			break
		}
	}
	if inode == "" {
		return -1
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "socket:["+inode+"]" {
			n, _ := strconv.Atoi(e.Name())
			return n
		}
	}
	return -1
}

// tcpHex formats an IPv4 address as /proc/net/tcp does: the address in
// host byte order (little endian on the machines herald supports) and the
// port, in hex.
func tcpHex(a *net.TCPAddr) string {
	ip := a.IP.To4()
	if ip == nil {
		return ""
	}
	b := []byte{ip[3], ip[2], ip[1], ip[0]}
	return strings.ToUpper(hex.EncodeToString(b)) + ":" + fmt.Sprintf("%04X", a.Port)
}

// SpareFD opens /dev/null and returns its descriptor, for FreeFDFirst.
// Open it before the socket whose descriptor the test wants to see reused,
// so that it sits below it.
func SpareFD(t testing.TB) int {
	t.Helper()
	n, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/null: %v", err)
	}
	return n
}

// FreeFDFirst arranges the process's descriptor table so that the next two
// descriptors opened are spare (a SpareFD below fd) and then fd itself: it
// fills every other free slot below fd with /dev/null and closes spare. A
// test that dials a loopback server running in its own process then gets
// the server's accepted socket on fd, since the client socket takes spare.
// The returned function closes the fillers; call it once the dial is done.
// fd must be free.
func FreeFDFirst(t testing.TB, fd, spare int) (release func()) {
	t.Helper()
	if spare >= fd {
		t.Fatalf("spare descriptor %d is not below %d", spare, fd)
	}
	var fillers []int
	for {
		n, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("open /dev/null: %v", err)
		}
		if n >= fd {
			syscall.Close(n)
			if n > fd {
				t.Fatalf("descriptor %d is not free", fd)
			}
			break
		}
		fillers = append(fillers, n)
	}
	syscall.Close(spare)
	return func() {
		for _, n := range fillers {
			syscall.Close(n)
		}
	}
}

// CPUTime returns the CPU time (user + system) this process has used.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// OpenFDs counts the descriptors this process holds.
func OpenFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// NoFDLeaks checks, when the test ends, that the process holds no more
// descriptors than when the test began. Sockets close asynchronously, so it
// waits a few seconds for the count to come back. Call it right after
// NoLeaks, before anything that opens descriptors.
func NoFDLeaks(t testing.TB) {
	t.Helper()
	// The runtime's network poller opens its descriptors on first use;
	// make sure they exist before counting.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	base := OpenFDs()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := OpenFDs()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d descriptors open after the test, %d before", n, base)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
