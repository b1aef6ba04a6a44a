package report

import "strings"

// Redacted replaces a secret in a recorded command line.
const Redacted = "[REDACTED]"

// secretWords mark a flag or environment variable name whose value is a
// secret: passwords and passphrases (the original tool took --password
// and --salt on the command line), tokens, keys and credentials.
var secretWords = []string{"password", "passwd", "passphrase", "secret", "token", "salt",
	"private-key", "privatekey", "private_key", "api-key", "apikey", "api_key", "credential", "session-key", "sessionkey"}

// pathSuffixes mark flags whose value names a file or a variable that
// holds the secret, not the secret itself (--passphrase-file,
// --passphrase-env): those values are kept.
var pathSuffixes = []string{"-file", "-path", "-dir", "-env", "_file", "_path"}

// secretPrefixes are values that are secrets wherever they appear: age
// identities and AWS secret-bearing session values.
var secretPrefixes = []string{"AGE-SECRET-KEY-", "AGE-PLUGIN-"}

// RedactArgs returns a copy of a command line with secret values
// replaced by [REDACTED]: the value of a flag whose name says it is a
// secret (--password, --secret, --token, --passphrase, --salt, …, as
// "--flag=value" or "--flag value"), unless the flag names where the
// secret is kept (--passphrase-file PATH stays); the value of a
// NAME=value argument whose NAME says so (AWS_SECRET_ACCESS_KEY=…,
// AWS_SESSION_TOKEN=…); an age secret key anywhere; and the password of
// a URL.
func RedactArgs(args []string) []string {
	out := make([]string, len(args))
	flagsDone := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		out[i] = redactValue(a)
		if i == 0 {
			continue // the program name
		}
		if a == "--" {
			flagsDone = true
			continue
		}
		if flagsDone || !strings.HasPrefix(a, "-") || a == "-" {
			out[i] = redactAssignment(out[i])
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		prefix := a[:len(a)-len(value)]
		switch {
		case hasValue && secretName(name):
			out[i] = prefix + Redacted
		case hasValue:
			out[i] = prefix + redactAssignment(redactValue(value))
		case secretName(name) && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--"):
			// "--flag value": the value is the next argument, even one
			// that starts with "-" (pflag takes it as the value), unless
			// it is a long flag (then this one was a boolean).
			i++
			out[i] = Redacted
		}
	}
	return out
}

// redactAssignment hides the value of NAME=value when NAME says it is a
// secret (AWS_SECRET_ACCESS_KEY=…).
func redactAssignment(a string) string {
	if name, _, ok := strings.Cut(a, "="); ok && name != "" && !strings.ContainsAny(name, " /") && secretName(name) {
		return name + "=" + Redacted
	}
	return a
}

// secretName reports whether a flag or variable name says its value is
// a secret.
func secretName(name string) bool {
	n := strings.ToLower(name)
	for _, s := range pathSuffixes {
		if strings.HasSuffix(n, s) {
			return false
		}
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return n == "pass" || n == "pw" || n == "key" || strings.HasSuffix(n, "-pass") || strings.HasSuffix(n, "_pass")
}

// redactValue hides the secrets a value carries whatever its flag: an age
// secret key, or the password in a URL's user info.
func redactValue(v string) string {
	for _, p := range secretPrefixes {
		if i := strings.Index(strings.ToUpper(v), p); i >= 0 {
			return v[:i] + Redacted
		}
	}
	if i := strings.Index(v, "://"); i >= 0 {
		rest := v[i+len("://"):]
		at := strings.Index(rest, "@")
		end := strings.IndexAny(rest, "/?#")
		if at >= 0 && (end < 0 || at < end) {
			if user, _, ok := strings.Cut(rest[:at], ":"); ok {
				return v[:i+len("://")] + user + ":" + Redacted + rest[at:]
			}
		}
	}
	return v
}
