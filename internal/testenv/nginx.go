package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Nginx is an nginx master process owned by one test. It runs in the
// foreground (daemon off) with its workers, and every file it writes (error
// log, pid file, temp files) is under Dir. What it prints on stdout and
// stderr is kept: a configuration that logs to /dev/stdout has its access
// log there.
type Nginx struct {
	t    testing.TB
	Addr string // host:port the configuration listens on
	Dir  string // nginx's prefix: nginx.conf, http.conf, error.log, temp/

	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	done   chan struct{} // closed when the master has exited
	err    error         // exit status; valid after done
}

// NginxBinary returns the path of nginx. Debian installs it in /usr/sbin,
// which is not on every user's PATH, so that is tried too.
func NginxBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return LookBinary(t, "nginx", "nginx-light")
}

// WriteNginxConf writes dir/nginx.conf, a main configuration that runs nginx
// in the foreground with two workers, its error log (level info), pid file
// and temp paths under dir, and whose http {} block includes httpConf,
// written to dir/http.conf. As root it runs the workers as root too, so that
// they can use the test's private directories. It returns nginx.conf's path.
func WriteNginxConf(t testing.TB, dir, httpConf string) string {
	t.Helper()
	temp := filepath.Join(dir, "temp")
	if err := os.MkdirAll(temp, 0o700); err != nil {
		t.Fatal(err)
	}
	include := filepath.Join(dir, "http.conf")
	if err := os.WriteFile(include, []byte(httpConf), 0o600); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 2;
%serror_log %s info;
pid %s;

events {
    worker_connections 4096; # two per proxied socket
}

http {
    client_body_temp_path %s;
    proxy_temp_path %s;
    fastcgi_temp_path %s;
    uwsgi_temp_path %s;
    scgi_temp_path %s;

    include %s;
}
`, user, filepath.Join(dir, "error.log"), filepath.Join(dir, "nginx.pid"),
		filepath.Join(temp, "client_body"), filepath.Join(temp, "proxy"),
		filepath.Join(temp, "fastcgi"), filepath.Join(temp, "uwsgi"), filepath.Join(temp, "scgi"),
		include)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// nginxArgs are the command line of nginx for the configuration in dir.
func nginxArgs(dir string, extra ...string) []string {
	return append([]string{
		"-p", dir + string(filepath.Separator),
		"-e", filepath.Join(dir, "error.log"), // before the configuration is read
		"-c", filepath.Join(dir, "nginx.conf"),
	}, extra...)
}

// CheckNginxConf runs `nginx -t` on httpConf (a configuration for the http
// {} context) wrapped by WriteNginxConf in a fresh directory, and returns
// nginx's output and whether it accepted the configuration.
func CheckNginxConf(t testing.TB, httpConf string) (string, error) {
	t.Helper()
	bin := NginxBinary(t)
	dir := t.TempDir()
	WriteNginxConf(t, dir, httpConf)
	out, err := exec.Command(bin, nginxArgs(dir, "-t", "-q")...).CombinedOutput()
	return string(out), err
}

// StartNginx runs nginx with httpConf (a configuration for the http {}
// context that listens on addr), waits until addr accepts connections, and
// stops nginx when the test ends. The configuration is checked with
// `nginx -t` first.
func StartNginx(t testing.TB, httpConf, addr string) *Nginx {
	t.Helper()
	bin := NginxBinary(t)
	dir := t.TempDir()
	WriteNginxConf(t, dir, httpConf)
	if out, err := exec.Command(bin, nginxArgs(dir, "-t", "-q")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	n := &Nginx{t: t, Addr: addr, Dir: dir, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	n.cmd = exec.Command(bin, nginxArgs(dir)...)
	n.cmd.Stdout = n.stdout
	n.cmd.Stderr = n.stderr
	// Its own process group, so that Stop can kill the workers along with a
	// master that does not stop.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	go func() {
		n.err = n.cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() {
			t.Logf("nginx on %s error log:\n%s\nstdout:\n%s\nstderr:\n%s", addr, n.ErrorLog(), n.Stdout(), n.Stderr())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := WaitDial(addr, 50*time.Millisecond); err == nil {
			return n
		}
		select {
		case <-n.done:
			t.Fatalf("nginx exited at start: %v\n%s\n%s", n.err, n.Stderr(), n.ErrorLog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %s after 10s\n%s", addr, n.ErrorLog())
		}
	}
}

// Stdout returns what nginx printed on stdout so far.
func (n *Nginx) Stdout() string { return n.stdout.String() }

// Stderr returns what nginx printed on stderr so far.
func (n *Nginx) Stderr() string { return n.stderr.String() }

// ErrorLog returns the content of the main error log, Dir/error.log.
func (n *Nginx) ErrorLog() string {
	b, err := os.ReadFile(filepath.Join(n.Dir, "error.log"))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}

// AllLogs returns everything nginx wrote: error log, stdout and stderr.
func (n *Nginx) AllLogs() string {
	return strings.Join([]string{n.ErrorLog(), n.Stdout(), n.Stderr()}, "\n")
}

// Stop shuts nginx down (SIGTERM: fast shutdown, open connections are
// closed) and waits for it; after 5s it kills the whole process group
// (master and workers).
func (n *Nginx) Stop() {
	select {
	case <-n.done:
	default:
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
			<-n.done
		}
	}
}

var (
	confReplicaLine = regexp.MustCompile(`^(\s*server\s+)(\S+)(\s.*# herald:replica\s*)$`)
	confListenLine  = regexp.MustCompile(`^(\s*listen\s+)([^;\s]+)(.*# herald:listen\s*)$`)
)

// HeraldNginxConf returns the repository's deploy/nginx/herald.conf with its
// "# herald:listen" line set to listen and its "# herald:replica" lines to
// replicas (there must be as many), as an operator adapts it.
func HeraldNginxConf(t testing.TB, listen string, replicas []string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "nginx", "herald.conf"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var nReplica, nListen int
	for i, line := range lines {
		switch {
		case confReplicaLine.MatchString(line):
			if nReplica < len(replicas) {
				lines[i] = confReplicaLine.ReplaceAllString(line, "${1}"+replicas[nReplica]+"${3}")
			}
			nReplica++
		case confListenLine.MatchString(line):
			lines[i] = confListenLine.ReplaceAllString(line, "${1}"+listen+"${3}")
			nListen++
		}
	}
	if nReplica != len(replicas) || nListen != 1 {
		t.Fatalf("herald.conf has %d replica lines and %d listen lines; want %d and 1", nReplica, nListen, len(replicas))
	}
	return strings.Join(lines, "\n")
}
