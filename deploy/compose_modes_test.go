package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/herald-gw/herald/internal/testenv"
)

// The compose overrides for Sentinel and Redis Cluster: docker-compose
// accepts them on top of docker-compose.yml, every herald replica gets the
// mode's setting, and every address it names is a service of the file.
func TestComposeRedisModes(t *testing.T) {
	bin := testenv.LookBinary(t, "docker-compose", "docker-compose")
	emptyEnv := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(emptyEnv, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	type service struct {
		Environment map[string]string `yaml:"environment"`
		Networks    map[string]struct {
			IPv4 string `yaml:"ipv4_address"`
		} `yaml:"networks"`
	}
	for _, mode := range []string{"sentinel", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(bin, "--env-file", emptyEnv, "-f", "../docker-compose.yml", "-f", "compose/"+mode+".yml", "config")
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "HERALD_") && !strings.HasPrefix(kv, "COMPOSE_") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, "HERALD_WS_TOKEN_SECRET="+randomHex(t, 32), "HERALD_SESSION_SECRET="+randomHex(t, 32))
			var out, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("docker-compose config with %s.yml: %v\n%s", mode, err, stderr.String())
			}
			var cfg struct {
				Services map[string]service `yaml:"services"`
			}
			if err := yaml.Unmarshal(out.Bytes(), &cfg); err != nil {
				t.Fatal(err)
			}
			hosts := map[string]bool{} // service names and fixed addresses
			for name, s := range cfg.Services {
				hosts[name] = true
				if ip := s.Networks["data"].IPv4; ip != "" {
					hosts[ip] = true
				}
			}
			for _, name := range []string{"herald1", "herald2", "herald3"} {
				env := cfg.Services[name].Environment
				var list string
				switch mode {
				case "sentinel":
					url, ok := strings.CutPrefix(env["HERALD_REDIS_URL"], "redis-sentinel://")
					if !ok || env["HERALD_REDIS_CLUSTER"] != "" {
						t.Fatalf("%s: HERALD_REDIS_URL %q, want redis-sentinel://…", name, env["HERALD_REDIS_URL"])
					}
					list, _, _ = strings.Cut(url, "/")
				case "cluster":
					if env["HERALD_REDIS_URL"] != "" {
						t.Fatalf("%s: HERALD_REDIS_URL %q still set with a cluster", name, env["HERALD_REDIS_URL"])
					}
					list = env["HERALD_REDIS_CLUSTER"]
				}
				addrs := strings.Split(list, ",")
				if want := map[string]int{"sentinel": 3, "cluster": 6}[mode]; len(addrs) != want {
					t.Fatalf("%s: %d Redis addresses (%q), want %d", name, len(addrs), list, want)
				}
				for _, a := range addrs {
					host, _, _ := strings.Cut(a, ":")
					if !hosts[host] {
						t.Errorf("%s: %s names no service of the file", name, a)
					}
				}
			}
		})
	}
}
