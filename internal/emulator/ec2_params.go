package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// params reads the form of one EC2 Query action. Keys are checked against
// the patterns the action accepts, in which every list position is "N"
// ("InstanceId.N", "TagSpecification.N.Tag.N.Key"); Action and Version
// are always accepted.
type params struct {
	form map[string][]string
}

// readParams checks every key of form against the accepted patterns and
// answers the first unknown one as EC2 does.
func readParams(form map[string][]string, accepted ...string) (params, *queryError) {
	for key := range form {
		if key == "Action" || key == "Version" {
			continue
		}
		pat, ok := keyPattern(key)
		if !ok || !slices.Contains(accepted, pat) {
			return params{}, &queryError{http.StatusBadRequest, "UnknownParameter", "The parameter " + key + " is not recognized"}
		}
	}
	return params{form: form}, nil
}

// keyPattern replaces the list positions of a key (whole numbers from 1)
// with N; it reports false for a position that is not one.
func keyPattern(key string) (string, bool) {
	parts := strings.Split(key, ".")
	for i, p := range parts {
		if p == "" {
			return "", false
		}
		if p[0] >= '0' && p[0] <= '9' {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || strconv.Itoa(n) != p {
				return "", false
			}
			parts[i] = "N"
		}
	}
	return strings.Join(parts, "."), true
}

// get returns a parameter's value, "" when absent.
func (p params) get(key string) string {
	if v := p.form[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (p params) has(key string) bool { return len(p.form[key]) > 0 }

// list returns the values of prefix.1, prefix.2, … in position order.
func (p params) list(prefix string) []string {
	type item struct {
		n int
		v string
	}
	var items []item
	for key, vals := range p.form {
		rest, ok := strings.CutPrefix(key, prefix+".")
		if !ok || strings.Contains(rest, ".") {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && n >= 1 {
			items = append(items, item{n, vals[0]})
		}
	}
	slices.SortFunc(items, func(a, b item) int { return a.n - b.n })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

// positions returns the list positions used under prefix ("Filter" for
// Filter.1.Name, Filter.2.Value.1 …), ascending.
func (p params) positions(prefix string) []int {
	seen := map[int]bool{}
	for key := range p.form {
		rest, ok := strings.CutPrefix(key, prefix+".")
		if !ok {
			continue
		}
		head, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(head); err == nil && n >= 1 {
			seen[n] = true
		}
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// boolean reads a boolean parameter; absent is def.
func (p params) boolean(key string, def bool) (bool, *queryError) {
	if !p.has(key) {
		return def, nil
	}
	v := p.get(key)
	b, ok := parseBool(v)
	if !ok {
		return false, invalidValue(v, key, "Expected: 'true' or 'false'.")
	}
	return b, nil
}

// filters reads Filter.N.Name and Filter.N.Value.N, refusing names the
// action does not know.
func (p params) filters(known func(string) bool) ([]ec2Filter, *queryError) {
	var out []ec2Filter
	for _, n := range p.positions("Filter") {
		f := ec2Filter{name: p.get(fmt.Sprintf("Filter.%d.Name", n)), values: p.list(fmt.Sprintf("Filter.%d.Value", n))}
		if !known(f.name) {
			return nil, &queryError{http.StatusBadRequest, "InvalidParameterValue", "The filter '" + f.name + "' is invalid"}
		}
		out = append(out, f)
	}
	return out, nil
}

// tagSpecs reads TagSpecification.N.ResourceType and its Tag.N.Key/Value
// for the resource types given; another type is refused as EC2 does.
func (p params) tagSpecs(types ...string) ([]Tag, *queryError) {
	var out []Tag
	for _, n := range p.positions("TagSpecification") {
		base := fmt.Sprintf("TagSpecification.%d", n)
		rt := p.get(base + ".ResourceType")
		if !slices.Contains(types, rt) {
			return nil, &queryError{http.StatusBadRequest, "InvalidParameterValue",
				"'" + rt + "' is not a valid taggable resource type for this operation."}
		}
		tags, qe := p.tags(base + ".Tag")
		if qe != nil {
			return nil, qe
		}
		out = append(out, tags...)
	}
	return out, nil
}

// tags reads prefix.N.Key and prefix.N.Value, bounded as EC2 bounds them.
func (p params) tags(prefix string) ([]Tag, *queryError) {
	var out []Tag
	for _, n := range p.positions(prefix) {
		k := p.get(fmt.Sprintf("%s.%d.Key", prefix, n))
		v := p.get(fmt.Sprintf("%s.%d.Value", prefix, n))
		switch {
		case k == "":
			return nil, &queryError{http.StatusBadRequest, "InvalidParameterValue", "Tag key must not be empty"}
		case len(k) > maxTagKey:
			return nil, &queryError{http.StatusBadRequest, "InvalidParameterValue",
				fmt.Sprintf("Tag key exceeds the maximum length of %d characters", maxTagKey)}
		case len(v) > maxTagValue:
			return nil, &queryError{http.StatusBadRequest, "InvalidParameterValue",
				fmt.Sprintf("Tag value exceeds the maximum length of %d characters", maxTagValue)}
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return nil, &queryError{http.StatusBadRequest, "InvalidParameterValue",
				"Tag keys starting with 'aws:' are reserved for internal use"}
		}
		out = append(out, Tag{Key: k, Value: v})
	}
	if len(out) > maxTags {
		return nil, &queryError{http.StatusBadRequest, "TagLimitExceeded",
			fmt.Sprintf("The maximum number of Tags for a resource has been reached: %d", maxTags)}
	}
	return out, nil
}

// Tag bounds, from the EC2 user guide ("Tag restrictions").
const (
	maxTags     = 50
	maxTagKey   = 128
	maxTagValue = 256
)

// invalidValue is EC2's InvalidParameterValue for one parameter.
func invalidValue(v, key, expect string) *queryError {
	return &queryError{http.StatusBadRequest, "InvalidParameterValue",
		"Value (" + v + ") for parameter " + key + " is invalid. " + expect}
}

// missing is EC2's MissingParameter.
func missing(key string) *queryError {
	return &queryError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter " + key}
}

// dryRun answers DryRun=true as EC2 does once the caller is authorised.
func (p params) dryRun() *queryError {
	b, qe := p.boolean("DryRun", false)
	if qe != nil {
		return qe
	}
	if b {
		return &queryError{http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set."}
	}
	return nil
}
