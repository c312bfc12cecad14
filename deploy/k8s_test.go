package deploy_test

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestKubernetesMetricsAndMemory checks what deploy/k8s promises beyond the
// basics: /metrics on a port of its own that the Service names apart and
// the NetworkPolicy keeps for Prometheus; GOMEMLIMIT under the memory
// limit; and the examples (ServiceMonitor, HPA on sockets) pointing at what
// exists.
func TestKubernetesMetricsAndMemory(t *testing.T) {
	objs := readManifests(t, "k8s")
	byKind := map[string][]k8sObject{}
	for _, o := range objs {
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}
	depObj := byKind["Deployment"][0]
	dep := decodeSpec[deploymentSpec](t, depObj)
	var meta struct {
		Template struct {
			Metadata struct {
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
		} `yaml:"template"`
	}
	if err := depObj.Spec.Decode(&meta); err != nil {
		t.Fatal(err)
	}
	podLabels := dep.Template.Metadata.Labels
	c := dep.Template.Spec.Containers[0]
	plain := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			plain[e.Name] = e.Value
		}
	}

	// Metrics on their own port.
	metricsPort := 0
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			metricsPort = p.ContainerPort
		}
	}
	if metricsPort == 0 {
		t.Fatal("the container has no port named metrics")
	}
	if got := addrPort(t, plain["HERALD_METRICS_ADDR"]); got != metricsPort {
		t.Errorf("HERALD_METRICS_ADDR %q; want the metrics port %d", plain["HERALD_METRICS_ADDR"], metricsPort)
	}
	if addrPort(t, plain["HERALD_ADDR"]) == metricsPort {
		t.Error("HERALD_ADDR and HERALD_METRICS_ADDR share a port")
	}
	if got := meta.Template.Metadata.Annotations["prometheus.io/port"]; got != strconv.Itoa(metricsPort) {
		t.Errorf("prometheus.io/port annotation %q; want %d", got, metricsPort)
	}
	svc := decodeSpec[serviceSpec](t, byKind["Service"][0])
	hasMetrics := false
	for _, p := range svc.Ports {
		hasMetrics = hasMetrics || fmt.Sprint(p.TargetPort) == "metrics"
	}
	if !hasMetrics {
		t.Error("the Service has no port targeting metrics (the ServiceMonitor scrapes through it)")
	}

	// GOMEMLIMIT below the memory limit, with room.
	limit := k8sBytes(t, c.Resources.Limits["memory"])
	gomem := goBytes(t, plain["GOMEMLIMIT"])
	if gomem <= 0 || gomem >= limit || float64(gomem) < 0.7*float64(limit) {
		t.Errorf("GOMEMLIMIT %q (%d bytes) against limits.memory %q (%d): want it below the limit, within 30%% of it",
			plain["GOMEMLIMIT"], gomem, c.Resources.Limits["memory"], limit)
	}

	// The NetworkPolicy: applies to the pods; http open, metrics only from
	// a chosen source.
	if len(byKind["NetworkPolicy"]) != 1 {
		t.Fatalf("%d NetworkPolicies; want 1", len(byKind["NetworkPolicy"]))
	}
	type netPolicy struct {
		PodSelector labelSelector `yaml:"podSelector"`
		PolicyTypes []string      `yaml:"policyTypes"`
		Ingress     []struct {
			From  []yaml.Node `yaml:"from"`
			Ports []struct {
				Port any `yaml:"port"`
			} `yaml:"ports"`
		} `yaml:"ingress"`
	}
	np := decodeSpec[netPolicy](t, byKind["NetworkPolicy"][0])
	if !subset(np.PodSelector.MatchLabels, podLabels) || len(np.PodSelector.MatchLabels) == 0 {
		t.Errorf("NetworkPolicy podSelector %v does not select the pods %v", np.PodSelector.MatchLabels, podLabels)
	}
	httpOpen, metricsFrom := false, -1
	for _, r := range np.Ingress {
		for _, p := range r.Ports {
			switch fmt.Sprint(p.Port) {
			case "http":
				httpOpen = true
			case "metrics", strconv.Itoa(metricsPort):
				metricsFrom = len(r.From)
			}
		}
	}
	if !httpOpen {
		t.Error("NetworkPolicy admits nothing on the http port")
	}
	if metricsFrom <= 0 {
		t.Errorf("NetworkPolicy: the metrics port is not limited to chosen sources (from: %d entries)", metricsFrom)
	}

	// The ServiceMonitor example scrapes the Service's metrics port.
	if len(byKind["ServiceMonitor"]) != 1 {
		t.Fatalf("%d ServiceMonitors; want the example", len(byKind["ServiceMonitor"]))
	}
	type serviceMonitor struct {
		Selector  labelSelector `yaml:"selector"`
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	}
	sm := decodeSpec[serviceMonitor](t, byKind["ServiceMonitor"][0])
	if !subset(sm.Selector.MatchLabels, byKind["Service"][0].Metadata.Labels) || len(sm.Selector.MatchLabels) == 0 {
		t.Errorf("ServiceMonitor selector %v does not select the Service's labels %v", sm.Selector.MatchLabels, byKind["Service"][0].Metadata.Labels)
	}
	if len(sm.Endpoints) != 1 || sm.Endpoints[0].Port != "metrics" || sm.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v; want port metrics, path /metrics", sm.Endpoints)
	}

	// The HPA example scales the Deployment on sockets, down slowly.
	if len(byKind["HorizontalPodAutoscaler"]) != 1 {
		t.Fatalf("%d HorizontalPodAutoscalers; want the example", len(byKind["HorizontalPodAutoscaler"]))
	}
	type autoscaler struct {
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas int `yaml:"minReplicas"`
		Metrics     []struct {
			Pods struct {
				Metric struct {
					Name string `yaml:"name"`
				} `yaml:"metric"`
			} `yaml:"pods"`
		} `yaml:"metrics"`
		Behavior struct {
			ScaleDown struct {
				StabilizationWindowSeconds int `yaml:"stabilizationWindowSeconds"`
				Policies                   []struct {
					Type  string `yaml:"type"`
					Value int    `yaml:"value"`
				} `yaml:"policies"`
			} `yaml:"scaleDown"`
		} `yaml:"behavior"`
	}
	hpa := decodeSpec[autoscaler](t, byKind["HorizontalPodAutoscaler"][0])
	if hpa.ScaleTargetRef.Kind != "Deployment" || hpa.ScaleTargetRef.Name != depObj.Metadata.Name {
		t.Errorf("HPA targets %+v; want the Deployment %s", hpa.ScaleTargetRef, depObj.Metadata.Name)
	}
	if len(hpa.Metrics) != 1 || hpa.Metrics[0].Pods.Metric.Name != "herald_sockets" {
		t.Errorf("HPA metrics %+v; want herald_sockets per pod", hpa.Metrics)
	}
	if hpa.MinReplicas < dep.Replicas {
		t.Errorf("HPA minReplicas %d below the Deployment's %d", hpa.MinReplicas, dep.Replicas)
	}
	sd := hpa.Behavior.ScaleDown
	if sd.StabilizationWindowSeconds < 600 || len(sd.Policies) == 0 || sd.Policies[0].Type != "Pods" || sd.Policies[0].Value != 1 {
		t.Errorf("HPA scale-down %+v; want one pod at a time after a long stabilization window (each removal is a reconnect storm)", sd)
	}
}

func addrPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// k8sBytes parses a Kubernetes memory quantity (binary or decimal suffix).
func k8sBytes(t *testing.T, q string) int64 {
	t.Helper()
	m := regexp.MustCompile(`^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$`).FindStringSubmatch(q)
	if m == nil {
		t.Fatalf("memory quantity %q not understood", q)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	mult := map[string]int64{"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m[2]]
	return n * mult
}

// goBytes parses a GOMEMLIMIT value as the Go runtime does (B, KiB, MiB,
// GiB, TiB suffixes).
func goBytes(t *testing.T, v string) int64 {
	t.Helper()
	m := regexp.MustCompile(`^(\d+)(B|KiB|MiB|GiB|TiB)?$`).FindStringSubmatch(v)
	if m == nil {
		t.Fatalf("GOMEMLIMIT %q not understood", v)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	mult := map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[m[2]]
	return n * mult
}

// TestDockerfileStampsVersion: the image's herald --version and
// herald_build_info name the build the Dockerfile was given.
func TestDockerfileStampsVersion(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ARG VERSION", "ARG COMMIT", "-X main.version=${VERSION}", "-X main.commit=${COMMIT}"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
