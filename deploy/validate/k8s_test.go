package validate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

const jobYAML = "../k8s/job.yaml"

// The account's default GetSnapshotBlock quota per Region (EBS-API.md):
// the workers of a job share it.
const accountQuota = 1000

// strict decodes one YAML document into v: YAML to JSON refusing
// duplicate keys, then JSON refusing any field v's type does not have.
func strict(t *testing.T, doc []byte, v any) {
	t.Helper()
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		t.Fatalf("%s: %v", jobYAML, err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %T: %v", jobYAML, v, err)
	}
}

// specs are the documents of job.yaml, each decoded strictly into its
// kind's type.
type specs struct {
	sa  corev1.ServiceAccount
	cm  corev1.ConfigMap
	job batchv1.Job
}

func loadJob(t *testing.T) specs {
	t.Helper()
	data, err := os.ReadFile(jobYAML)
	if err != nil {
		t.Fatal(err)
	}
	var s specs
	seen := map[string]int{}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var meta struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.APIVersion + " " + meta.Kind {
		case "v1 ServiceAccount":
			strict(t, doc, &s.sa)
		case "v1 ConfigMap":
			strict(t, doc, &s.cm)
		case "batch/v1 Job":
			strict(t, doc, &s.job)
		default:
			t.Fatalf("%s: unexpected document %s %s", jobYAML, meta.APIVersion, meta.Kind)
		}
		seen[meta.Kind]++
	}
	if seen["ServiceAccount"] != 1 || seen["ConfigMap"] != 1 || seen["Job"] != 1 {
		t.Fatalf("%s: documents %v, want one ServiceAccount, ConfigMap and Job", jobYAML, seen)
	}
	return s
}

// ids counts the targets of a targets file as acquire --targets does:
// a # starts a comment, blank lines are skipped.
func ids(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// flagValue returns the value after flag in args.
func flagValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("the command %q has no %s", args, flag)
	}
	return args[i+1]
}

func TestKubernetesJob(t *testing.T) {
	s := loadJob(t)
	job, spec := s.job, s.job.Spec
	pod := spec.Template.Spec
	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
		t.Fatal("completionMode is not Indexed")
	}
	if s.cm.Namespace != job.Namespace || s.sa.Namespace != job.Namespace {
		t.Fatalf("namespaces %q %q %q", s.sa.Namespace, s.cm.Namespace, job.Namespace)
	}
	// The service account gets AWS credentials through IRSA.
	if pod.ServiceAccountName != s.sa.Name || !strings.HasPrefix(s.sa.Annotations["eks.amazonaws.com/role-arn"], "arn:aws:iam::") {
		t.Fatalf("service account %q, annotations %v", pod.ServiceAccountName, s.sa.Annotations)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Fatalf("restartPolicy %q: podFailurePolicy needs Never", pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(c.Command) != 0 || len(c.Args) == 0 || c.Args[0] != "acquire" {
		t.Fatalf("container command %q args %q: want the image's entrypoint with acquire …", c.Command, c.Args)
	}

	// The targets: one completion per id, the ConfigMap mounted where
	// --targets reads it.
	targets := flagValue(t, c.Args, "--targets")
	key := path.Base(targets)
	list := ids(s.cm.Data[key])
	if spec.Completions == nil || int(*spec.Completions) != len(list) || len(list) == 0 {
		t.Fatalf("completions %v, but %s lists %d targets", spec.Completions, key, len(list))
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == s.cm.Name && m.MountPath == path.Dir(targets) && m.ReadOnly {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Fatalf("the ConfigMap %s is not mounted read-only at %s", s.cm.Name, path.Dir(targets))
	}
	out := flagValue(t, c.Args, "--out")
	if !strings.Contains(out, "{target}") && !strings.Contains(out, "{snapshot}") && !strings.Contains(out, "{index}") {
		t.Fatalf("--out %q has no placeholder: every worker would write the same place", out)
	}

	// The quota: each of the parallel workers gets floor(quota / parallelism).
	if spec.Parallelism == nil || *spec.Parallelism < 1 || *spec.Parallelism > *spec.Completions {
		t.Fatalf("parallelism %v", spec.Parallelism)
	}
	share := strconv.Itoa(accountQuota / int(*spec.Parallelism))
	if flagValue(t, c.Args, "--max-rate") != share || flagValue(t, c.Args, "--account-rate") != share {
		t.Fatalf("--max-rate %s --account-rate %s, want %s each (%d / parallelism %d)",
			flagValue(t, c.Args, "--max-rate"), flagValue(t, c.Args, "--account-rate"), share, accountQuota, *spec.Parallelism)
	}

	// Sized from README's Performance figures: peak RSS up to 233 MiB.
	mem := c.Resources.Limits[corev1.ResourceMemory]
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || mem.Cmp(resource.MustParse("256Mi")) < 0 {
		t.Fatalf("resources %+v: the limit must hold the measured peak RSS (233 MiB)", c.Resources)
	}

	// Non-root, read-only root file system, nothing to escalate to.
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Fatalf("security contexts: pod %+v container %+v", psc, sc)
	}
	checkPodFailurePolicy(t, job, c.Name)
}

// The podFailurePolicy maps every exit code of ebsimager as decided:
// FailJob on the permanent ones, Count on the transient ones, Ignore on
// an interruption (and on a disruption of the pod).
func checkPodFailurePolicy(t *testing.T, job batchv1.Job, container string) {
	t.Helper()
	p := job.Spec.PodFailurePolicy
	if p == nil {
		t.Fatal("no podFailurePolicy")
	}
	got := map[string][]int{}
	disruption := false
	for i, r := range p.Rules {
		if r.OnPodConditions != nil {
			for _, c := range r.OnPodConditions {
				disruption = disruption || (c.Type == corev1.DisruptionTarget && r.Action == batchv1.PodFailurePolicyActionIgnore)
			}
			continue
		}
		e := r.OnExitCodes
		if e == nil || e.Operator != batchv1.PodFailurePolicyOnExitCodesOpIn || e.ContainerName == nil || *e.ContainerName != container {
			t.Fatalf("rule %d: want onExitCodes In, for container %s: %+v", i, container, e)
		}
		for _, v := range e.Values {
			got[string(r.Action)] = append(got[string(r.Action)], int(v))
		}
	}
	for _, v := range got {
		slices.Sort(v)
	}
	want := byAction(t)
	for _, action := range []string{permanent, transient, interrupted} {
		if fmt.Sprint(got[action]) != fmt.Sprint(want[action]) {
			t.Errorf("podFailurePolicy %s on %v, want %v (from %s)", action, got[action], want[action], exitGo)
		}
	}
	if len(got) != 3 {
		t.Errorf("podFailurePolicy actions %v", got)
	}
	if !disruption {
		t.Error("podFailurePolicy does not Ignore a DisruptionTarget pod condition")
	}
}
