package emulator

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
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

// page reads MaxResults (within [lo, hi]) and NextToken, which
// exclude the id list named idKey, as EC2's Describe actions do.
func (p params) page(idKey string, lo, hi int, valid func(string) bool) (max int, after string, qe *queryError) {
	if p.has("MaxResults") {
		v := p.get("MaxResults")
		m, err := strconv.Atoi(v)
		if err != nil || m < lo || m > hi {
			return 0, "", &queryError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf(
				"Value ( %s ) for parameter maxResults is invalid. Expecting a value between %d and %d.", v, lo, hi)}
		}
		max = m
	}
	if p.has("NextToken") {
		v := p.get("NextToken")
		a, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || !valid(string(a)) {
			return 0, "", &queryError{http.StatusBadRequest, "InvalidParameterValue", "The token '" + v + "' is invalid."}
		}
		after = string(a)
	}
	if len(p.list(idKey)) > 0 && (max > 0 || after != "") {
		return 0, "", &queryError{http.StatusBadRequest, "InvalidParameterCombination",
			"The parameter " + idKey + " cannot be used with the parameter maxResults or nextToken"}
	}
	return max, after, nil
}

// pageOf cuts items, in the order of their ids, after the id after and
// to max, returning the next token.
func pageOf[T any](items []T, id func(T) string, max int, after string) ([]T, string) {
	if after != "" {
		i, _ := slices.BinarySearchFunc(items, after+"\x00", func(it T, t string) int { return strings.Compare(id(it), t) })
		items = items[i:]
	}
	if max > 0 && len(items) > max {
		items = items[:max]
		return items, base64.RawURLEncoding.EncodeToString([]byte(id(items[len(items)-1])))
	}
	return items, ""
}

// notFoundIDs is EC2's error for ids that do not exist.
func notFoundIDs(code, noun string, ids []string) *queryError {
	if len(ids) == 1 {
		return &queryError{http.StatusBadRequest, code, fmt.Sprintf("The %s '%s' does not exist", noun, ids[0])}
	}
	return &queryError{http.StatusBadRequest, code, fmt.Sprintf("The %ss '%s' do not exist", noun, strings.Join(ids, ", "))}
}

// malformed is EC2's error for an id that is not one.
func malformed(code, id, want string) *queryError {
	return &queryError{http.StatusBadRequest, code, fmt.Sprintf("Invalid id: \"%s\" (expecting \"%s-...\")", id, want)}
}

// permit authorises action and then answers DryRun: what every EC2
// action here does once its parameters are read.
func (s *Server) permit(action string, p params) *queryError {
	if qe := s.authorize(action); qe != nil {
		return qe
	}
	return p.dryRun()
}

// permitSnapshot permits action, then finds the snapshot the parameter
// key names.
func (s *Server) permitSnapshot(action string, p params, key string) (*snapshot, *queryError) {
	if qe := s.permit(action, p); qe != nil {
		return nil, qe
	}
	return s.ec2Snapshot(p.get(key))
}

// madeParams reads what every action that makes a snapshot takes, its
// Description and its snapshot TagSpecifications, then permits action.
func (s *Server) madeParams(action string, p params) (desc string, tags []Tag, qe *queryError) {
	if desc, qe = p.description(); qe != nil {
		return "", nil, qe
	}
	if tags, qe = p.tagSpecs("snapshot"); qe != nil {
		return "", nil, qe
	}
	if qe := s.permit(action, p); qe != nil {
		return "", nil, qe
	}
	return desc, tags, nil
}

// idKind is one kind of EC2 resource id, with the errors EC2 answers for
// one that is malformed or that does not exist.
type idKind struct {
	list          string         // the Describe action's id list: "InstanceId" for InstanceId.N
	pattern       *regexp.Regexp // nil: ids are checked when looked up
	prefix        string         // as the malformed error names it: "i"
	malformedCode string
	notFoundCode  string
	noun          string // as the not-found error names it: "instance ID"
}

var (
	instanceIDs = idKind{"InstanceId", instanceIDPattern, "i", "InvalidInstanceID.Malformed", "InvalidInstanceID.NotFound", "instance ID"}
	volumeIDs   = idKind{"VolumeId", volumeIDPattern, "vol", "InvalidVolumeID.Malformed", "InvalidVolume.NotFound", "volume"}
	// lockedIDs are DescribeLockedSnapshots' snapshot ids, which
	// ec2Snapshot checks as it finds them.
	lockedIDs = idKind{list: "SnapshotId"}
)

// valid reports whether id is well formed.
func (k idKind) valid(id string) bool { return k.pattern == nil || k.pattern.MatchString(id) }

// check answers a malformed id as EC2 does.
func (k idKind) check(id string) *queryError {
	if k.valid(id) {
		return nil
	}
	return malformed(k.malformedCode, id, k.prefix)
}

// notFound is EC2's error for ids of this kind that do not exist.
func (k idKind) notFound(ids ...string) *queryError { return notFoundIDs(k.notFoundCode, k.noun, ids) }

// require answers MissingParameter for the first of keys not given.
func (p params) require(keys ...string) *queryError {
	for _, k := range keys {
		if !p.has(k) {
			return missing(k)
		}
	}
	return nil
}

// id reads the id parameter key, which must be given (else the
// MissingParameter error names the parameter name) and be of kind k.
func (p params) id(key, name string, k idKind) (string, *queryError) {
	if !p.has(key) {
		return "", missing(name)
	}
	id := p.get(key)
	if qe := k.check(id); qe != nil {
		return "", qe
	}
	return id, nil
}

// existing returns ids when m holds every one, or the not-found error for
// those it lacks; no ids is all of m's, in order.
func existing[T any](k idKind, m map[string]*T, ids []string) ([]string, *queryError) {
	var absent []string
	for _, id := range ids {
		if m[id] == nil {
			absent = append(absent, id)
		}
	}
	if len(absent) > 0 {
		return nil, k.notFound(absent...)
	}
	if len(ids) == 0 {
		return slices.Sorted(maps.Keys(m)), nil
	}
	return ids, nil
}

// selectPage answers a Describe action over m: the items of the ids a
// asks for (all of m's when it names none, in order) that pass its
// filters, as match says, cut to the page it asks for; with the next
// token.
func selectPage[T, I any](a listArgs, k idKind, m map[string]*T, item func(*T) I, id func(I) string,
	match func(it I, name, pat string) bool,
) ([]I, string, *queryError) {
	ids, qe := existing(k, m, a.ids)
	if qe != nil {
		return nil, "", qe
	}
	var kept []I
	for _, x := range ids {
		it := item(m[x])
		if keepAll(a.filters, func(name, pat string) bool { return match(it, name, pat) }) {
			kept = append(kept, it)
		}
	}
	page, next := pageOf(kept, id, a.max, a.after)
	return page, next, nil
}

// listArgs are the parameters EC2's Describe actions share: the ids asked
// for, the filters and the page.
type listArgs struct {
	ids     []string
	filters []ec2Filter
	max     int // 0: all
	after   string
}

// readList reads a Describe action that lists ids of kind (refusing
// malformed ones), filters whose names known accepts, MaxResults and
// NextToken; then permits action.
func (s *Server) readList(form url.Values, action string, kind idKind, known func(string) bool) (listArgs, *queryError) {
	p, qe := readParams(form, kind.list+".N", "Filter.N.Name", "Filter.N.Value.N", "MaxResults", "NextToken", "DryRun")
	if qe != nil {
		return listArgs{}, qe
	}
	a := listArgs{ids: p.list(kind.list)}
	for _, id := range a.ids {
		if qe := kind.check(id); qe != nil {
			return listArgs{}, qe
		}
	}
	if a.filters, qe = p.filters(known); qe != nil {
		return listArgs{}, qe
	}
	if a.max, a.after, qe = p.page(kind.list, minDescribeResults, maxDescribeResults, kind.valid); qe != nil {
		return listArgs{}, qe
	}
	if qe := s.permit(action, p); qe != nil {
		return listArgs{}, qe
	}
	return a, nil
}
