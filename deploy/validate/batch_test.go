package validate

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
)

const (
	jobDefinitionJSON = "../batch/job-definition.json"
	submitJobJSON     = "../batch/submit-job.json"
)

// strictJSON decodes file into v refusing unknown fields: the files are
// what `aws batch register-job-definition --cli-input-json` and
// `aws batch submit-job --cli-input-json` take, whose keys are the SDK
// input types' fields (camelCase, which encoding/json matches).
func strictJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %T: %v", file, v, err)
	}
	if dec.More() {
		t.Fatalf("%s: more than one JSON value", file)
	}
}

// matches is Batch's onExitCode match: a glob of digits that may end in
// "*", against the decimal exit code.
func matches(glob string, code int) bool {
	s := strconv.Itoa(code)
	if p, ok := strings.CutSuffix(glob, "*"); ok {
		return strings.HasPrefix(s, p)
	}
	return glob == s
}

func TestBatchJobDefinition(t *testing.T) {
	var in batch.RegisterJobDefinitionInput
	strictJSON(t, jobDefinitionJSON, &in)
	if in.JobDefinitionName == nil || in.Type != types.JobDefinitionTypeContainer || !slices.Contains(types.JobDefinitionTypeContainer.Values(), in.Type) {
		t.Fatalf("name %v type %q", in.JobDefinitionName, in.Type)
	}
	for _, p := range in.PlatformCapabilities {
		if !slices.Contains(p.Values(), p) {
			t.Fatalf("platform capability %q", p)
		}
	}
	cp := in.ContainerProperties
	if cp == nil || cp.Image == nil || cp.JobRoleArn == nil || !strings.HasPrefix(*cp.JobRoleArn, "arn:aws:iam::") {
		t.Fatalf("containerProperties: %+v", cp)
	}
	if len(cp.Command) == 0 || cp.Command[0] != "acquire" || !slices.Contains(cp.Command, "--targets") {
		t.Fatalf("command %q", cp.Command)
	}
	var vcpu, memory bool
	for _, r := range cp.ResourceRequirements {
		if !slices.Contains(r.Type.Values(), r.Type) || r.Value == nil {
			t.Fatalf("resource requirement %+v", r)
		}
		vcpu = vcpu || r.Type == types.ResourceTypeVcpu
		if r.Type == types.ResourceTypeMemory {
			mib, err := strconv.Atoi(*r.Value)
			memory = err == nil && mib >= 256 // README's Performance: peak RSS up to 233 MiB
		}
	}
	if !vcpu || !memory {
		t.Fatalf("resourceRequirements %+v", cp.ResourceRequirements)
	}
	if cp.User == nil || *cp.User == "0" || *cp.User == "root" || cp.ReadonlyRootFilesystem == nil || !*cp.ReadonlyRootFilesystem || cp.Privileged == nil || *cp.Privileged {
		t.Fatalf("user %v readonlyRootFilesystem %v privileged %v", cp.User, cp.ReadonlyRootFilesystem, cp.Privileged)
	}
	out := cp.Command[slices.Index(cp.Command, "--out")+1]
	if !strings.Contains(out, "{target}") && !strings.Contains(out, "{snapshot}") && !strings.Contains(out, "{index}") {
		t.Fatalf("--out %q has no placeholder", out)
	}
	checkEvaluateOnExit(t, in.RetryStrategy)

	var sub batch.SubmitJobInput
	strictJSON(t, submitJobJSON, &sub)
	if sub.ArrayProperties == nil || sub.ArrayProperties.Size == nil || *sub.ArrayProperties.Size < 2 || *sub.ArrayProperties.Size > 10000 ||
		sub.JobDefinition == nil || *sub.JobDefinition != *in.JobDefinitionName || sub.JobQueue == nil {
		t.Fatalf("submit-job: %+v", sub)
	}
}

// The retry strategy follows the same decisions as the podFailurePolicy,
// within what Batch allows (at most 5 conditions, each exit code a glob):
// the first condition an exit code matches decides; no permanent code is
// retried; the last condition, "*", ends the job on anything else; a
// host that went away (Spot reclaim) is retried.
func checkEvaluateOnExit(t *testing.T, rs *types.RetryStrategy) {
	t.Helper()
	if rs == nil || rs.Attempts == nil || *rs.Attempts < 2 || *rs.Attempts > 10 {
		t.Fatalf("retryStrategy: %+v", rs)
	}
	e := rs.EvaluateOnExit
	if len(e) == 0 || len(e) > 5 {
		t.Fatalf("%d evaluateOnExit conditions: Batch takes 1 to 5", len(e))
	}
	last := e[len(e)-1]
	if last.OnExitCode == nil || *last.OnExitCode != "*" || last.Action != types.RetryActionExit || last.OnReason != nil || last.OnStatusReason != nil {
		t.Fatalf("the last condition %+v is not onExitCode \"*\": EXIT", last)
	}
	codes, _ := exitCodes(t)
	known := map[int]bool{}
	for _, c := range codes {
		known[c] = true
	}
	host := false
	for i, c := range e {
		if !slices.Contains(c.Action.Values(), c.Action) {
			t.Fatalf("condition %d: action %q", i, c.Action)
		}
		if c.OnStatusReason != nil && *c.OnStatusReason == "Host EC2*" && c.Action == types.RetryActionRetry {
			host = true
		}
		if c.OnExitCode == nil || *c.OnExitCode == "*" {
			continue
		}
		n, err := strconv.Atoi(*c.OnExitCode)
		if err != nil || !known[n] {
			t.Errorf("condition %d: onExitCode %q is not one of ebsimager's exit codes (%s)", i, *c.OnExitCode, exitGo)
		}
	}
	if !host {
		t.Error("no RETRY on onStatusReason \"Host EC2*\" (a Spot instance reclaimed)")
	}
	act := byAction(t)
	action := func(code int) types.RetryAction {
		for _, c := range e {
			if c.OnExitCode != nil && matches(*c.OnExitCode, code) {
				return c.Action
			}
		}
		return types.RetryActionExit
	}
	for _, code := range act[permanent] {
		if action(code) != types.RetryActionExit {
			t.Errorf("exit code %d is permanent, but Batch retries it", code)
		}
	}
	// Exit 3 (incomplete: a rerun resumes) and 11 (quota) must be retried.
	for _, code := range []int{codes["exitIncomplete"], codes["exitQuota"]} {
		if action(code) != types.RetryActionRetry {
			t.Errorf("exit code %d is transient, but Batch does not retry it", code)
		}
	}
	for _, code := range act[transient] {
		if action(code) == types.RetryActionRetry {
			continue
		}
		t.Logf("transient exit code %d ends the Batch job (at most 5 conditions): see deploy/README.md", code)
	}
}
