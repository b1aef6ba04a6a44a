package report

import (
	"os"
	"os/user"
	"runtime"
	"strconv"
	"strings"
)

// Host is the machine and OS account a run happened on.
type Host struct {
	Hostname string `json:"hostname"`
	User     string `json:"user"`     // login name
	UserName string `json:"username"` // the account's full name, when it has one
	UID      string `json:"uid"`
	OS       string `json:"os"`   // GOOS
	Arch     string `json:"arch"` // GOARCH
	// Kernel is the kernel release (Linux: /proc/sys/kernel/osrelease).
	Kernel string `json:"kernel,omitempty"`
}

// CollectHost describes this machine and the account running the tool.
// What cannot be found is left empty (a container may have no passwd
// entry for its uid); the uid is always known.
func CollectHost() Host {
	h := Host{OS: runtime.GOOS, Arch: runtime.GOARCH, UID: strconv.Itoa(os.Getuid())}
	if name, err := os.Hostname(); err == nil {
		h.Hostname = name
	}
	if u, err := user.Current(); err == nil {
		h.User, h.UserName = u.Username, u.Name
	} else if name := os.Getenv("USER"); name != "" {
		h.User = name
	}
	if rel, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(rel))
	}
	return h
}
