package report

import (
	"strings"
	"testing"
)

func TestRedactArgs(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		// Secret flags, both spellings; paths to secrets stay.
		{"ebsimager acquire snap-0a --out ev --password hunter2", "ebsimager acquire snap-0a --out ev --password [REDACTED]"},
		{"ebsimager acquire --password=hunter2 --salt=pepper", "ebsimager acquire --password=[REDACTED] --salt=[REDACTED]"},
		{"ebsimager x --passphrase 'a b' --token T0K --secret s --api-key K", "ebsimager x --passphrase [REDACTED] --token [REDACTED] --secret [REDACTED] --api-key [REDACTED]"},
		{"ebsimager x --aws-secret-access-key=abc --session-token xyz", "ebsimager x --aws-secret-access-key=[REDACTED] --session-token [REDACTED]"},
		{"ebsimager x -password hunter2", "ebsimager x -password [REDACTED]"},
		{"ebsimager export ev --passphrase-file /keys/pass.txt --out img", "ebsimager export ev --passphrase-file /keys/pass.txt --out img"},
		{"ebsimager export ev --passphrase-env EBS_PASS --token-file=/run/t", "ebsimager export ev --passphrase-env EBS_PASS --token-file=/run/t"},
		{"ebsimager x --Password hunter2", "ebsimager x --Password [REDACTED]"},
		// A secret flag followed by another flag was a boolean.
		{"ebsimager x --passphrase --out ev", "ebsimager x --passphrase --out ev"},
		{"ebsimager x --token", "ebsimager x --token"},
		{"ebsimager x --password -hunter2 -q", "ebsimager x --password [REDACTED] -q"},
		// Environment assignments, bare or as a flag's value.
		{"env AWS_SECRET_ACCESS_KEY=wJalr AWS_ACCESS_KEY_ID=AKIA ebsimager", "env AWS_SECRET_ACCESS_KEY=[REDACTED] AWS_ACCESS_KEY_ID=AKIA ebsimager"},
		{"ebsimager x AWS_SESSION_TOKEN=FwoG --env=AWS_SECRET_ACCESS_KEY=wJalr", "ebsimager x AWS_SESSION_TOKEN=[REDACTED] --env=AWS_SECRET_ACCESS_KEY=[REDACTED]"},
		// Values that are secrets whatever the flag.
		{"ebsimager x --identity AGE-SECRET-KEY-1QQQQ", "ebsimager x --identity [REDACTED]"},
		{"ebsimager x --recipient age1qqqq", "ebsimager x --recipient age1qqqq"},
		{"ebsimager x --endpoint-url https://user:pa55@vpce.example:443/x", "ebsimager x --endpoint-url https://user:[REDACTED]@vpce.example:443/x"},
		{"ebsimager x --endpoint-url=http://u:p@127.0.0.1:4566", "ebsimager x --endpoint-url=http://u:[REDACTED]@127.0.0.1:4566"},
		{"ebsimager x --endpoint-url http://127.0.0.1:4566/a@b", "ebsimager x --endpoint-url http://127.0.0.1:4566/a@b"},
		// After --, everything is an argument, but assignments and secret
		// values are still hidden.
		{"ebsimager x -- --password AWS_SECRET=1", "ebsimager x -- --password AWS_SECRET=[REDACTED]"},
		// Ordinary flags and the case fields stay as they are.
		{"ebsimager acquire snap-0a --out ev --case-number 7 --examiner Jo --notes x=y", "ebsimager acquire snap-0a --out ev --case-number 7 --examiner Jo --notes x=y"},
	} {
		in := splitArgs(tc.in)
		got := strings.Join(RedactArgs(in), " ")
		if got != tc.want {
			t.Errorf("RedactArgs(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
		if strings.Join(in, " ") != strings.ReplaceAll(tc.in, "'", "") {
			t.Errorf("RedactArgs changed its input %q", in)
		}
	}
}

// splitArgs splits on spaces, keeping single-quoted words whole.
func splitArgs(s string) []string {
	var out []string
	for i, part := range strings.Split(s, "'") {
		if i%2 == 1 {
			out = append(out, part)
			continue
		}
		out = append(out, strings.Fields(part)...)
	}
	return out
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"ebsimager", "--out", "/a b/c", "--notes", "it's", "", "[REDACTED]", "x=y,z"})
	want := `ebsimager --out '/a b/c' --notes 'it'\''s' '' '[REDACTED]' x=y,z`
	if got != want {
		t.Fatalf("shellJoin = %s, want %s", got, want)
	}
}
