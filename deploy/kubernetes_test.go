package deploy

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
	SecurityContext              struct {
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
	if d.Replicas == nil || *d.Replicas != 1 {
		t.Error("replicas must be 1: detection windows live in one process")
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
