package deploy

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/deploy/internal/k8srules"
)

// k8sObject is the part of a manifest the tests read; Spec stays raw so each
// check decodes only what it needs.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec yaml.Node         `yaml:"spec"`
	Data map[string]string `yaml:"data"`
}

// loadManifests reads every resource the kustomization lists.
func loadManifests(t *testing.T) map[string]k8sObject {
	t.Helper()
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	readYAML(t, "kubernetes/kustomization.yaml", &kust)
	objs := map[string]k8sObject{}
	for _, r := range kust.Resources {
		b, err := os.ReadFile(filepath.Join("kubernetes", r))
		if err != nil {
			t.Fatalf("%v (run `go generate ./deploy` for rules-configmap.yaml)", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", r, err)
			}
			objs[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	return objs
}

func decodeSpec(t *testing.T, o k8sObject, v any) {
	t.Helper()
	if err := o.Spec.Decode(v); err != nil {
		t.Fatalf("%s/%s spec: %v", o.Kind, o.Metadata.Name, err)
	}
}

// TestKubernetesObjects checks that the kit has every object the issue lists.
func TestKubernetesObjects(t *testing.T) {
	objs := loadManifests(t)
	for _, want := range []string{
		"Deployment/vigil", "ConfigMap/vigil-config", "ConfigMap/vigil-rules", "Service/vigil",
		"ServiceMonitor/vigil", "NetworkPolicy/vigil", "PodDisruptionBudget/vigil", "ServiceAccount/vigil",
	} {
		if _, ok := objs[want]; !ok {
			t.Errorf("%s missing; have %v", want, slices.Sorted(maps.Keys(objs)))
		}
	}
}

type podSpec struct {
	AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
	Affinity                     struct {
		PodAntiAffinity struct {
			Preferred []weightedTerm `yaml:"preferredDuringSchedulingIgnoredDuringExecution"`
			Required  []any          `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
		} `yaml:"podAntiAffinity"`
	} `yaml:"affinity"`
	SecurityContext struct {
		RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
		RunAsUser      *int64 `yaml:"runAsUser"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Containers []struct {
		Name string   `yaml:"name"`
		Args []string `yaml:"args"`
		Env  []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom struct {
				SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		SecurityContext struct {
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		LivenessProbe  probe `yaml:"livenessProbe"`
		ReadinessProbe probe `yaml:"readinessProbe"`
		VolumeMounts   []struct {
			Name string `yaml:"name"`
		} `yaml:"volumeMounts"`
		Resources struct {
			Limits map[string]string `yaml:"limits"`
		} `yaml:"resources"`
	} `yaml:"containers"`
	Volumes []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type weightedTerm struct {
	PodAffinityTerm struct {
		TopologyKey   string        `yaml:"topologyKey"`
		LabelSelector labelSelector `yaml:"labelSelector"`
	} `yaml:"podAffinityTerm"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
	} `yaml:"httpGet"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type deploymentSpec struct {
	Replicas *int          `yaml:"replicas"`
	Selector labelSelector `yaml:"selector"`
	Strategy struct {
		Type          string `yaml:"type"`
		RollingUpdate struct {
			MaxSurge       intOrPercent `yaml:"maxSurge"`
			MaxUnavailable intOrPercent `yaml:"maxUnavailable"`
		} `yaml:"rollingUpdate"`
	} `yaml:"strategy"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
}

func isTrue(b *bool) bool { return b != nil && *b }

// TestKubernetesDeploymentSecurity checks the pod's security settings, its
// probes, that secrets come only from Secret references, and that every
// mounted ConfigMap is part of the kit.
func TestKubernetesDeploymentSecurity(t *testing.T) {
	objs := loadManifests(t)
	var d deploymentSpec
	decodeSpec(t, objs["Deployment/vigil"], &d)
	pod := d.Template.Spec
	if !isTrue(pod.SecurityContext.RunAsNonRoot) || pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 ||
		pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod securityContext %+v: want non-root, a non-zero uid and RuntimeDefault seccomp", pod.SecurityContext)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it does not need")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if !isTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		!slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("container securityContext %+v: want read-only root, no privilege escalation, drop ALL", sc)
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes: liveness %q, readiness %q; want /healthz and /readyz", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	if c.Resources.Limits["memory"] == "" {
		t.Error("no memory limit")
	}
	secretRefs := 0
	for _, e := range c.Env {
		if e.Value != "" {
			t.Errorf("env %s has an inline value; secrets and settings belong in a Secret or the ConfigMap", e.Name)
		}
		if ref := e.ValueFrom.SecretKeyRef; ref != nil {
			secretRefs++
			if ref.Name != "vigil-secrets" {
				t.Errorf("env %s refers to Secret %q, want vigil-secrets", e.Name, ref.Name)
			}
		}
	}
	if secretRefs == 0 {
		t.Error("no Secret references: the NATS password must come from a Secret")
	}
	checkVolumes(t, objs, pod)
	if !containsLabels(d.Template.Metadata.Labels, d.Selector.MatchLabels) {
		t.Errorf("selector %v does not match pod labels %v", d.Selector.MatchLabels, d.Template.Metadata.Labels)
	}
}

func checkVolumes(t *testing.T, objs map[string]k8sObject, pod podSpec) {
	t.Helper()
	volumes := map[string]bool{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
		if v.ConfigMap != nil {
			if _, ok := objs["ConfigMap/"+v.ConfigMap.Name]; !ok {
				t.Errorf("volume %s mounts ConfigMap %s, which the kit does not define", v.Name, v.ConfigMap.Name)
			}
		}
	}
	for _, m := range pod.Containers[0].VolumeMounts {
		if !volumes[m.Name] {
			t.Errorf("volumeMount %s has no volume", m.Name)
		}
	}
}

// TestKubernetesSelectors checks that the Service, ServiceMonitor,
// NetworkPolicy and PodDisruptionBudget all select the Vigil pod, and that
// the ServiceMonitor scrapes a port the Service has.
func TestKubernetesSelectors(t *testing.T) {
	objs := loadManifests(t)
	var d deploymentSpec
	decodeSpec(t, objs["Deployment/vigil"], &d)
	podLabels := d.Template.Metadata.Labels

	var svc struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct{ Name string }
	}
	decodeSpec(t, objs["Service/vigil"], &svc)
	var sm struct {
		Selector  labelSelector `yaml:"selector"`
		Endpoints []struct{ Port, Path string }
	}
	decodeSpec(t, objs["ServiceMonitor/vigil"], &sm)
	var np, pdb struct {
		PodSelector labelSelector `yaml:"podSelector"`
		Selector    labelSelector `yaml:"selector"`
		PolicyTypes []string      `yaml:"policyTypes"`
	}
	decodeSpec(t, objs["NetworkPolicy/vigil"], &np)
	decodeSpec(t, objs["PodDisruptionBudget/vigil"], &pdb)

	tests := []struct {
		name     string
		selector map[string]string
		labels   map[string]string
	}{
		{"Service selects the pod", svc.Selector, podLabels},
		{"ServiceMonitor selects the Service", sm.Selector.MatchLabels, objs["Service/vigil"].Metadata.Labels},
		{"NetworkPolicy selects the pod", np.PodSelector.MatchLabels, podLabels},
		{"PodDisruptionBudget selects the pod", pdb.Selector.MatchLabels, podLabels},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.selector) == 0 || !containsLabels(tt.labels, tt.selector) {
				t.Errorf("selector %v does not match labels %v", tt.selector, tt.labels)
			}
		})
	}
	if len(sm.Endpoints) != 1 || sm.Endpoints[0].Path != "/metrics" ||
		!slices.ContainsFunc(svc.Ports, func(p struct{ Name string }) bool { return p.Name == sm.Endpoints[0].Port }) {
		t.Errorf("ServiceMonitor endpoints %+v do not scrape /metrics on a named Service port %+v", sm.Endpoints, svc.Ports)
	}
	if !slices.Equal(np.PolicyTypes, []string{"Ingress", "Egress"}) {
		t.Errorf("NetworkPolicy policyTypes %v, want [Ingress Egress] (default deny both ways)", np.PolicyTypes)
	}
}

func containsLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKubernetesRulesConfigMapIsGenerated fails when the rules ConfigMap
// differs from the rule files in rules/.
func TestKubernetesRulesConfigMapIsGenerated(t *testing.T) {
	want, err := k8srules.Render(filepath.Join("..", "rules"), "vigil-rules")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("kubernetes/rules-configmap.yaml")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("kubernetes/rules-configmap.yaml is stale or missing (%v); run `go generate ./deploy`", err)
	}
}

// TestKustomizeBuild renders the kit with kubectl's kustomize, as
// `kubectl apply -k deploy/kubernetes` would.
func TestKustomizeBuild(t *testing.T) {
	t.Parallel()
	kubectl := needTool(t, "kubectl")
	out, err := run(t, time.Minute, ".", nil, kubectl, "kustomize", "kubernetes")
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(out)))
	kinds := map[string]int{}
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kustomize output: %v", err)
		}
		kinds[o.Kind]++
	}
	for _, k := range []string{"Deployment", "Service", "ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget", "ConfigMap"} {
		if kinds[k] == 0 {
			t.Errorf("kustomize output has no %s: %v", k, kinds)
		}
	}
}

// intOrPercent is a Kubernetes IntOrString as rolling updates and
// disruption budgets take it: 1 or "25%".
type intOrPercent string

// of resolves v against total pods as Kubernetes does: a percentage
// rounded up or down, an empty value as def.
func (v intOrPercent) of(t *testing.T, total int, up bool, def intOrPercent) int {
	t.Helper()
	if v == "" {
		v = def
	}
	if p, ok := strings.CutSuffix(string(v), "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("%q is not a percentage", v)
		}
		if up {
			return (total*n + 99) / 100
		}
		return total * n / 100
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		t.Fatalf("%q is neither a number nor a percentage", v)
	}
	return n
}

// TestKubernetesHighAvailability checks what keeps detection running when a
// pod or a node goes: several replicas, each a cluster member on a NATS
// cluster (the shipped config enables the cluster, replicates over three
// NATS nodes and leaves the member name to the pod); a rollout that never
// takes more pods down than the disruption budget allows, and so never all;
// a budget that keeps two up but still lets a drain evict one; members
// spread over nodes without making the surge pod unschedulable.
func TestKubernetesHighAvailability(t *testing.T) {
	objs := loadManifests(t)
	var d deploymentSpec
	decodeSpec(t, objs["Deployment/vigil"], &d)
	replicas := 1
	if d.Replicas != nil {
		replicas = *d.Replicas
	}
	if replicas < 2 {
		t.Fatalf("replicas %d: a single member leaves detection down while it restarts; run at least 2", replicas)
	}

	var vc vigilClusterConfig
	if err := yaml.Unmarshal([]byte(objs["ConfigMap/vigil-config"].Data["vigil.yaml"]), &vc); err != nil {
		t.Fatal(err)
	}
	if !vc.Cluster.Enabled || vc.Cluster.Member != "" || vc.NATS.URL == "" || vc.NATS.Replicas != 3 {
		t.Errorf("vigil.yaml: cluster.enabled %v, cluster.member %q, nats.url %q, nats.replicas %d; want the cluster enabled, "+
			"no fixed member name (every pod shares the file; each takes its pod name), an external NATS and 3 replicas",
			vc.Cluster.Enabled, vc.Cluster.Member, vc.NATS.URL, vc.NATS.Replicas)
	}

	minAvailable := checkBudget(t, objs, replicas)
	checkRollout(t, d, replicas, minAvailable)
	aa := d.Template.Spec.Affinity.PodAntiAffinity
	if !slices.ContainsFunc(aa.Preferred, func(p weightedTerm) bool {
		term := p.PodAffinityTerm
		return term.TopologyKey == "kubernetes.io/hostname" && len(term.LabelSelector.MatchLabels) > 0 &&
			containsLabels(d.Template.Metadata.Labels, term.LabelSelector.MatchLabels)
	}) || len(aa.Required) > 0 {
		t.Errorf("pod anti-affinity %+v: want a preferred term on kubernetes.io/hostname selecting the Vigil pods, and no required one", aa)
	}
}

// checkBudget checks that the disruption budget keeps at least two members
// up (one to lose, one to take over) and still lets a drain evict a pod;
// it returns the budget's minAvailable.
func checkBudget(t *testing.T, objs map[string]k8sObject, replicas int) int {
	t.Helper()
	var pdb struct {
		MinAvailable   intOrPercent `yaml:"minAvailable"`
		MaxUnavailable intOrPercent `yaml:"maxUnavailable"`
	}
	decodeSpec(t, objs["PodDisruptionBudget/vigil"], &pdb)
	minAvailable := pdb.MinAvailable.of(t, replicas, true, "0")
	if pdb.MaxUnavailable != "" || minAvailable < 2 || minAvailable >= replicas {
		t.Errorf("PodDisruptionBudget minAvailable %q (%d of %d), maxUnavailable %q; want minAvailable of at least 2 and below replicas, "+
			"so a disruption leaves a standby to take over and a drain can still evict one pod",
			pdb.MinAvailable, minAvailable, replicas, pdb.MaxUnavailable)
	}
	return minAvailable
}

// checkRollout checks that a rollout never takes more pods down than the
// budget allows (a Recreate takes them all).
func checkRollout(t *testing.T, d deploymentSpec, replicas, minAvailable int) {
	t.Helper()
	ru := d.Strategy.RollingUpdate
	unavailable := ru.MaxUnavailable.of(t, replicas, false, "25%")
	surge := ru.MaxSurge.of(t, replicas, true, "25%")
	if d.Strategy.Type != "RollingUpdate" || replicas-unavailable < minAvailable || surge+unavailable == 0 {
		t.Errorf("strategy %s with maxSurge %d, maxUnavailable %d of %d replicas: want a rolling update that keeps at least %d (the budget's minAvailable) up",
			d.Strategy.Type, surge, unavailable, replicas, minAvailable)
	}
}
