package iampolicy

import (
	"slices"
	"strings"
)

// Request is one AWS call as IAM authorizes it: the action, one resource
// it names (an ARN, or "*" for an action without resource-level
// permission) and the condition keys the request carries.
type Request struct {
	Action   string
	Resource string
	Context  map[string][]string
}

// Allows reports whether a statement of p allows r. It knows the
// operators Build writes (StringEquals, StringLike, Bool, Null and
// ForAllValues:StringEquals); any other operator fails closed. A policy
// allows a call that names several resources only when it allows each.
func (p *Policy) Allows(r Request) bool {
	for _, st := range p.Statement {
		if st.Effect == "Allow" && matchAny(st.Action, r.Action, true) &&
			matchAny(st.Resource, r.Resource, false) && st.Condition.holds(r.Context) {
			return true
		}
	}
	return false
}

// matchAny reports whether one of patterns matches s, with IAM's * and ?
// wildcards; actions compare without regard to case.
func matchAny(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, s = strings.ToLower(p), strings.ToLower(s)
		}
		if like(p, s) {
			return true
		}
	}
	return false
}

// like matches IAM's wildcards: * any run of characters (across ":" and
// "/" too), ? one character.
func like(pattern, s string) bool {
	// The classic two-pointer match: on a mismatch after a *, let that *
	// take one more character and try again.
	p, i, star, mark := 0, 0, -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// holds reports whether the condition holds for the request's keys:
// every operator, and every key of each.
func (c Condition) holds(ctx map[string][]string) bool {
	for op, keys := range c {
		for key, want := range keys {
			got, present := ctx[key]
			if !present {
				// Condition keys compare without regard to case.
				for k, v := range ctx {
					if strings.EqualFold(k, key) {
						got, present = v, true
					}
				}
			}
			if !opHolds(op, want, got, present) {
				return false
			}
		}
	}
	return true
}

func opHolds(op string, want, got []string, present bool) bool {
	switch op {
	case "StringEquals":
		return present && len(got) == 1 && slices.Contains(want, got[0])
	case "StringLike":
		return present && len(got) == 1 && slices.ContainsFunc(want, func(w string) bool { return like(w, got[0]) })
	case "Bool":
		return present && len(got) == 1 && slices.ContainsFunc(want, func(w string) bool { return strings.EqualFold(w, got[0]) })
	case "Null":
		return len(want) == 1 && (want[0] == "true") == !present
	case "ForAllValues:StringEquals":
		for _, g := range got {
			if !slices.Contains(want, g) {
				return false
			}
		}
		return true
	}
	return false
}

// Denies reports whether a Deny statement of p (a bucket policy's)
// matches r: its action, its resource and its condition.
func (p *Policy) Denies(r Request) bool {
	for _, st := range p.Statement {
		if st.Effect == "Deny" && matchAny(st.Action, r.Action, true) &&
			matchAny(st.Resource, r.Resource, false) && st.Condition.holds(r.Context) {
			return true
		}
	}
	return false
}
