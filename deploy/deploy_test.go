// Package deploy_test checks herald's deployment files: docker-compose.yml,
// the Dockerfile, deploy/k8s and deploy/nginx/herald.conf, the last one by
// running a cluster of real herald processes behind real nginx
// (cluster_test.go).
package deploy_test

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/herald-gw/herald/internal/testenv"
)

var (
	heraldBin      string // cmd/herald, with the race detector when the tests have it
	heraldPlainBin string // cmd/herald without the race detector: latency under load
	healthcheckBin string // cmd/healthcheck, built as the Dockerfile builds it
)

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "herald-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if heraldBin, err = testenv.BuildHerald(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if heraldPlainBin, err = testenv.BuildHeraldNoRace(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	healthcheckBin = filepath.Join(dir, "healthcheck")
	if out, err := staticBuild(healthcheckBin, "./cmd/healthcheck"); err != nil {
		fmt.Fprintf(os.Stderr, "building cmd/healthcheck: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// staticBuild builds pkg (relative to the repository root) the way the
// Dockerfile does.
func staticBuild(out, pkg string) ([]byte, error) {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd.CombinedOutput()
}

// Herald's defaults for the settings the shutdown arithmetic depends on.
const (
	defaultDrainWindow     = 5 * time.Second
	defaultShutdownTimeout = 25 * time.Second
	heraldIdleTimeout      = 60 * time.Second
)

// ---- nginx ----

// nginxDirectives returns herald.conf without comments.
func nginxDirectives(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("nginx/herald.conf")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func TestNginxConfigParses(t *testing.T) {
	conf := testenv.HeraldNginxConf(t, testenv.FreeAddr(t), []string{"127.0.0.1:18081", "127.0.0.1:18082", "127.0.0.1:18083"})
	if out, err := testenv.CheckNginxConf(t, conf); err != nil {
		t.Fatalf("nginx -t rejects deploy/nginx/herald.conf: %v\n%s", err, out)
	}

	// What only reading the file can tell; cluster_test.go checks the rest
	// by running it.
	d := nginxDirectives(t)
	for _, v := range []string{"$request_uri", "$args", "$query_string", "$is_args", "$arg_token", "$http_referer"} {
		if strings.Contains(d, v) {
			t.Errorf("herald.conf uses %s: WS tokens travel in the query string of /ws and must not be logged", v)
		}
	}
	if regexp.MustCompile(`\$request\b`).MatchString(d) {
		t.Error("herald.conf uses $request (the request line, query string included)")
	}
	m := regexp.MustCompile(`location = /ws \{[^}]*\}`).FindString(d)
	if m == "" {
		t.Fatal("no `location = /ws` block")
	}
	for _, name := range []string{"proxy_read_timeout", "proxy_send_timeout"} {
		sm := regexp.MustCompile(name + `\s+(\d+)s;`).FindStringSubmatch(m)
		if sm == nil {
			t.Errorf("location /ws sets no %s in seconds", name)
			continue
		}
		if d, _ := time.ParseDuration(sm[1] + "s"); d <= heraldIdleTimeout {
			t.Errorf("%s = %s; want more than herald's idle timeout %s, or nginx cuts idle sockets first", name, d, heraldIdleTimeout)
		}
	}
	// Passive health checks take every replica out in turn during a
	// rolling restart (TestRollingRestart): each must say max_fails=0.
	for _, line := range strings.Split(d, "\n") {
		if regexp.MustCompile(`^\s*server\s+\S+:\d+`).MatchString(line) && !strings.Contains(line, "max_fails=0") {
			t.Errorf("upstream server without max_fails=0: %q", strings.TrimSpace(line))
		}
	}
	if !regexp.MustCompile(`proxy_next_upstream\s[^;]*http_503`).MatchString(d) {
		t.Error("no proxy_next_upstream ... http_503: a handshake on a draining replica would not be retried")
	}
	if strings.Contains(d, "/metrics") {
		t.Error("herald.conf routes /metrics: scrape the replicas directly instead")
	}
}

// ---- docker-compose ----

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Environment map[string]string `yaml:"environment"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	StopGracePeriod string `yaml:"stop_grace_period"`
	DependsOn       map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Volumes []any `yaml:"volumes"`
	Ports   []any `yaml:"ports"`
}

func TestComposeConfig(t *testing.T) {
	bin := testenv.LookBinary(t, "docker-compose", "docker-compose")
	emptyEnv := filepath.Join(t.TempDir(), "empty.env") // ignore a developer's .env
	if err := os.WriteFile(emptyEnv, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	compose := func(env ...string) (stdout, stderr string, err error) {
		cmd := exec.Command(bin, "--env-file", emptyEnv, "-f", "../docker-compose.yml", "config")
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "HERALD_") && !strings.HasPrefix(kv, "COMPOSE_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, env...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.String(), e.String(), err
	}

	// No secret is written in the file: without them, compose refuses.
	if _, stderr, err := compose(); err == nil || !strings.Contains(stderr, "HERALD_WS_TOKEN_SECRET") {
		t.Errorf("docker-compose config without HERALD_WS_TOKEN_SECRET: err=%v, stderr:\n%s\nwant a failure naming the variable", err, stderr)
	}
	if _, stderr, err := compose("HERALD_WS_TOKEN_SECRET=x"); err == nil || !strings.Contains(stderr, "HERALD_SESSION_SECRET") {
		t.Errorf("docker-compose config without HERALD_SESSION_SECRET: err=%v, stderr:\n%s\nwant a failure naming the variable", err, stderr)
	}

	wsSecret, sessionSecret := randomHex(t, 32), randomHex(t, 32)
	out, stderr, err := compose("HERALD_WS_TOKEN_SECRET="+wsSecret, "HERALD_SESSION_SECRET="+sessionSecret)
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, stderr)
	}
	var cfg struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("parsing docker-compose config's output: %v\n%s", err, out)
	}

	redis, ok := cfg.Services["redis"]
	if !ok {
		t.Fatalf("no redis service; services: %v", keys(cfg.Services))
	}
	if !strings.HasPrefix(redis.Image, "redis:7") || len(redis.Healthcheck.Test) == 0 {
		t.Errorf("redis: image %q, healthcheck %q; want redis:7-alpine with a healthcheck", redis.Image, redis.Healthcheck.Test)
	}

	var heralds []string
	nodeIDs := map[string]bool{}
	for name, s := range cfg.Services {
		if s.Environment["HERALD_REDIS_URL"] == "" {
			continue
		}
		heralds = append(heralds, name)
		env := s.Environment
		if s.Build == nil {
			t.Errorf("%s: not built from the Dockerfile", name)
		}
		if env["HERALD_WS_TOKEN_SECRET"] != wsSecret || env["HERALD_SESSION_SECRET"] != sessionSecret {
			t.Errorf("%s: the secrets do not come from the environment", name)
		}
		if env["HERALD_TRUSTED_PROXIES"] == "" {
			t.Errorf("%s: no HERALD_TRUSTED_PROXIES: herald would log nginx's address for every client", name)
		}
		if id := env["HERALD_NODE_ID"]; id == "" || nodeIDs[id] {
			t.Errorf("%s: HERALD_NODE_ID %q is empty or not unique", name, id)
		} else {
			nodeIDs[id] = true
		}
		if s.DependsOn["redis"].Condition != "service_healthy" {
			t.Errorf("%s: depends_on redis %+v; want condition service_healthy", name, s.DependsOn["redis"])
		}
		if len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD" || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), "/readyz") {
			t.Errorf("%s: healthcheck %q; want an exec-form (no shell in the image) check of /readyz", name, s.Healthcheck.Test)
		}
		grace, err := time.ParseDuration(s.StopGracePeriod)
		need := envDuration(env, "HERALD_DRAIN_WINDOW", defaultDrainWindow) + envDuration(env, "HERALD_SHUTDOWN_TIMEOUT", defaultShutdownTimeout)
		if err != nil || grace <= need {
			t.Errorf("%s: stop_grace_period %q; want more than drain window + shutdown timeout = %s", name, s.StopGracePeriod, need)
		}
	}
	if len(heralds) != 3 {
		t.Errorf("herald services: %v; want 3", heralds)
	}

	nginx, ok := cfg.Services["nginx"]
	if !ok {
		t.Fatalf("no nginx service; services: %v", keys(cfg.Services))
	}
	if !strings.HasPrefix(nginx.Image, "nginx:") {
		t.Errorf("nginx image %q", nginx.Image)
	}
	if !strings.Contains(fmt.Sprint(nginx.Volumes), "deploy/nginx/herald.conf:/etc/nginx/conf.d/") {
		t.Errorf("nginx volumes %v: want deploy/nginx/herald.conf mounted in /etc/nginx/conf.d", nginx.Volumes)
	}
	if !strings.Contains(fmt.Sprint(nginx.Ports), "8080") {
		t.Errorf("nginx ports %v: want 8080 published", nginx.Ports)
	}
	for _, h := range heralds {
		if _, ok := nginx.DependsOn[h]; !ok {
			t.Errorf("nginx does not depend on %s", h)
		}
	}
}

// ---- Dockerfile ----

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	stages := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got FROM lines %q", stages)
	}
	final := stages[len(stages)-1][1]
	if !strings.Contains(final, "distroless/static") && final != "scratch" {
		t.Errorf("final stage FROM %s; want distroless static or scratch", final)
	}
	if m := regexp.MustCompile(`(?m)^USER\s+(\d+)(:\d+)?\s*$`).FindStringSubmatch(df); m == nil || m[1] == "0" {
		t.Error("no numeric non-root USER (Kubernetes' runAsNonRoot needs a numeric uid)")
	}
	for _, want := range []string{"EXPOSE 8080", "ENTRYPOINT [\"/usr/local/bin/herald\"]", "CGO_ENABLED=0", "-trimpath", "./cmd/herald", "./cmd/healthcheck"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The compose healthcheck runs the probe at the path the image puts it.
	if !strings.Contains(df, "/usr/local/bin/healthcheck") {
		t.Error("Dockerfile does not install /usr/local/bin/healthcheck, which docker-compose.yml's healthcheck runs")
	}

	// The build the Dockerfile runs gives static binaries (nothing to load
	// on distroless/static or scratch).
	if testing.Short() {
		t.Skip("static build of cmd/herald skipped in -short mode")
	}
	herald := filepath.Join(t.TempDir(), "herald")
	if out, err := staticBuild(herald, "./cmd/herald"); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./cmd/herald: %v\n%s", err, out)
	}
	for _, bin := range []string{herald, healthcheckBin} {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked", filepath.Base(bin))
			}
		}
		f.Close()
	}
}

// ---- Kubernetes ----

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec      yaml.Node `yaml:"spec"`
	Resources []string  `yaml:"resources"` // Kustomization
	file      string
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env            []envVar `yaml:"env"`
	ReadinessProbe *probe   `yaml:"readinessProbe"`
	LivenessProbe  *probe   `yaml:"livenessProbe"`
	Lifecycle      struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
			Exec *struct {
				Command []string `yaml:"command"`
			} `yaml:"exec"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
}

type deploymentSpec struct {
	Replicas        int           `yaml:"replicas"`
	MinReadySeconds int           `yaml:"minReadySeconds"`
	Selector        labelSelector `yaml:"selector"`
	Strategy        struct {
		Type          string `yaml:"type"`
		RollingUpdate struct {
			MaxUnavailable any `yaml:"maxUnavailable"`
			MaxSurge       any `yaml:"maxSurge"`
		} `yaml:"rollingUpdate"`
	} `yaml:"strategy"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
			SecurityContext               struct {
				RunAsNonRoot *bool `yaml:"runAsNonRoot"`
			} `yaml:"securityContext"`
			Containers []container `yaml:"containers"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Port       int `yaml:"port"`
		TargetPort any `yaml:"targetPort"`
	} `yaml:"ports"`
}

type pdbSpec struct {
	MinAvailable   any           `yaml:"minAvailable"`
	MaxUnavailable any           `yaml:"maxUnavailable"`
	Selector       labelSelector `yaml:"selector"`
}

// readManifests parses every YAML document of every file in dir.
func readManifests(t *testing.T, dir string) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	var objs []k8sObject
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var o k8sObject
			err := dec.Decode(&o)
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s, document %d: %v", f, i+1, err)
			}
			if o.Kind == "" {
				continue // an empty document
			}
			if o.APIVersion == "" {
				t.Errorf("%s, document %d (%s): no apiVersion", f, i+1, o.Kind)
			}
			o.file = filepath.Base(f)
			objs = append(objs, o)
		}
	}
	return objs
}

func decodeSpec[T any](t *testing.T, o k8sObject) T {
	t.Helper()
	var spec T
	if err := o.Spec.Decode(&spec); err != nil {
		t.Fatalf("%s: %s spec: %v", o.file, o.Kind, err)
	}
	return spec
}

func TestKubernetesManifests(t *testing.T) {
	objs := readManifests(t, "k8s")
	byKind := map[string][]k8sObject{}
	for _, o := range objs {
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}
	if n := len(byKind["Deployment"]); n != 1 {
		t.Fatalf("%d Deployments in deploy/k8s; want 1", n)
	}
	dep := decodeSpec[deploymentSpec](t, byKind["Deployment"][0])
	podLabels := dep.Template.Metadata.Labels

	if dep.Replicas != 3 {
		t.Errorf("replicas = %d; want 3", dep.Replicas)
	}
	if len(dep.Selector.MatchLabels) == 0 || !subset(dep.Selector.MatchLabels, podLabels) {
		t.Errorf("Deployment selector %v does not select its pod labels %v", dep.Selector.MatchLabels, podLabels)
	}
	if ru := dep.Strategy.RollingUpdate; fmt.Sprint(ru.MaxUnavailable) != "0" || fmt.Sprint(ru.MaxSurge) != "1" {
		t.Errorf("rolling update maxUnavailable %v maxSurge %v; want 0 and 1", ru.MaxUnavailable, ru.MaxSurge)
	}
	if dep.MinReadySeconds < 3 {
		t.Errorf("minReadySeconds %d; want a few seconds, so that the ingress knows a new pod before the next old one drains", dep.MinReadySeconds)
	}
	if len(dep.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers; want 1", len(dep.Template.Spec.Containers))
	}
	c := dep.Template.Spec.Containers[0]
	if got := probePath(c.ReadinessProbe); got != "/readyz" {
		t.Errorf("readinessProbe httpGet path %q; want /readyz", got)
	}
	if got := probePath(c.LivenessProbe); got != "/healthz" {
		t.Errorf("livenessProbe httpGet path %q; want /healthz (not /readyz: a Redis outage must not restart every replica)", got)
	}

	env := map[string]envVar{}
	plain := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e
		if e.ValueFrom == nil {
			plain[e.Name] = e.Value
		}
	}
	for _, name := range []string{"HERALD_REDIS_URL", "HERALD_WS_TOKEN_SECRET", "HERALD_SESSION_SECRET"} {
		if e := env[name]; e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.Value != "" {
			t.Errorf("%s is not taken from a Secret", name)
		}
	}
	if e := env["HERALD_NODE_ID"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Error("HERALD_NODE_ID does not come from the pod name (fieldRef metadata.name)")
	}
	if plain["HERALD_TRUSTED_PROXIES"] == "" {
		t.Error("HERALD_TRUSTED_PROXIES is not set")
	}

	// The shutdown arithmetic: the grace period counts from the start of
	// preStop, and must cover preStop, then herald's drain.
	pre := c.Lifecycle.PreStop
	var preStop time.Duration
	switch {
	case pre == nil:
		t.Error("no preStop hook: endpoints may still route to a pod that has begun draining")
	case pre.Sleep != nil:
		preStop = time.Duration(pre.Sleep.Seconds) * time.Second
	case pre.Exec != nil:
		t.Errorf("preStop exec %q: the image has no shell or sleep; use the sleep action", pre.Exec.Command)
	}
	if pre != nil && preStop <= 0 {
		t.Errorf("preStop pauses %s; want a few seconds", preStop)
	}
	drain := envDuration(plain, "HERALD_DRAIN_WINDOW", defaultDrainWindow)
	shutdown := envDuration(plain, "HERALD_SHUTDOWN_TIMEOUT", defaultShutdownTimeout)
	need := preStop + drain + shutdown
	if g := dep.Template.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= need {
		t.Errorf("terminationGracePeriodSeconds %v; want more than preStop %s + drain window %s + shutdown timeout %s = %s",
			ptrString(g), preStop, drain, shutdown, need)
	}

	if len(c.Resources.Requests) == 0 || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v; want requests and a memory limit", c.Resources)
	}
	sc := c.SecurityContext
	nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (dep.Template.Spec.SecurityContext.RunAsNonRoot != nil && *dep.Template.Spec.SecurityContext.RunAsNonRoot)
	if !nonRoot || !sc.ReadOnlyRootFilesystem || fmt.Sprint(sc.Capabilities.Drop) != "[ALL]" {
		t.Errorf("securityContext %+v; want runAsNonRoot, readOnlyRootFilesystem and capabilities drop ALL", sc)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}

	// Service and PodDisruptionBudget select the Deployment's pods.
	if len(byKind["Service"]) != 1 {
		t.Fatalf("%d Services; want 1", len(byKind["Service"]))
	}
	svc := decodeSpec[serviceSpec](t, byKind["Service"][0])
	if len(svc.Selector) == 0 || !subset(svc.Selector, podLabels) {
		t.Errorf("Service selector %v does not select the pod labels %v", svc.Selector, podLabels)
	}
	for _, p := range svc.Ports {
		if !containerHasPort(c, p.TargetPort) {
			t.Errorf("Service targetPort %v is not a port of the container", p.TargetPort)
		}
	}
	if len(byKind["PodDisruptionBudget"]) != 1 {
		t.Fatalf("%d PodDisruptionBudgets; want 1", len(byKind["PodDisruptionBudget"]))
	}
	pdb := decodeSpec[pdbSpec](t, byKind["PodDisruptionBudget"][0])
	if len(pdb.Selector.MatchLabels) == 0 || !subset(pdb.Selector.MatchLabels, podLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the pod labels %v", pdb.Selector.MatchLabels, podLabels)
	}
	if (pdb.MinAvailable == nil) == (pdb.MaxUnavailable == nil) {
		t.Errorf("PodDisruptionBudget: want exactly one of minAvailable (%v) and maxUnavailable (%v)", pdb.MinAvailable, pdb.MaxUnavailable)
	}

	// The Secret the Deployment reads: an example only, whose placeholders
	// herald refuses (shorter than 32 bytes), and which the kustomization
	// leaves out.
	for _, o := range byKind["Secret"] {
		var s struct {
			StringData map[string]string `yaml:"stringData"`
		}
		b, _ := os.ReadFile(filepath.Join("k8s", o.file))
		_ = yaml.Unmarshal(b, &s)
		for _, key := range []string{"ws-token-secret", "session-secret"} {
			if v := s.StringData[key]; len(v) >= 32 {
				t.Errorf("%s: %s placeholder is %d bytes: herald would accept it as a real secret", o.file, key, len(v))
			}
		}
	}
	for _, o := range byKind["Kustomization"] {
		for _, r := range o.Resources {
			if _, err := os.Stat(filepath.Join("k8s", r)); err != nil {
				t.Errorf("%s lists %s: %v", o.file, r, err)
			}
			if strings.Contains(r, "example") {
				t.Errorf("%s applies %s", o.file, r)
			}
		}
	}
}

// ---- helpers ----

func envDuration(env map[string]string, name string, def time.Duration) time.Duration {
	v, ok := env[name]
	if !ok || v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return -1 // makes the comparisons fail, naming the variable's effect
	}
	return d
}

func probePath(p *probe) string {
	if p == nil || p.HTTPGet == nil {
		return ""
	}
	return p.HTTPGet.Path
}

func containerHasPort(c container, target any) bool {
	for _, p := range c.Ports {
		if fmt.Sprint(target) == p.Name || fmt.Sprint(target) == fmt.Sprint(p.ContainerPort) {
			return true
		}
	}
	return false
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func ptrString(p *int) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
