package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Sizes of the kernel's requests.
const (
	// maxRead is the largest READ the kernel sends (max_read, and the
	// FUSE_MAX_PAGES it asks for): 1 MiB, the most Linux allows, so a
	// sequential reader takes two EBS blocks a request, not 128 KiB.
	maxRead = 1 << 20
	// maxBackground bounds the asynchronous reads (readahead) the kernel
	// keeps in flight; a read a process waits for is not counted. With
	// 1 MiB buffers it also bounds their memory: about 32 MiB, beside the
	// volume's own cache.
	maxBackground = 32
	// cacheFor is how long the kernel keeps names and attributes: they
	// never change while the mount lives.
	cacheFor = time.Hour
)

// ErrUnavailable is wrapped by the error of a mount that FUSE could not
// make: no /dev/fuse, no fusermount3, or the mount refused.
var ErrUnavailable = errors.New("FUSE is not available")

// MountPointError says why a directory cannot be mounted on: it does not
// exist, is not a directory, or is not empty.
type MountPointError struct {
	Dir, Problem string
}

func (e *MountPointError) Error() string {
	return fmt.Sprintf("mount point %s %s; it must be an empty directory", e.Dir, e.Problem)
}

// Options configures Serve.
type Options struct {
	// ModTime is every inode's mtime, atime and ctime; zero means the
	// time of the mount.
	ModTime time.Time
	// Ready is called once the mount is up and answering.
	Ready func()
	// ReadError is called with every read the volume failed (the reader
	// got EIO), from the goroutine serving it.
	ReadError func(error)
	// Detached is called when the mount was busy at the end (a process
	// had a file open or its working directory in it) and was detached
	// lazily: it leaves the name space now, and reads of the files left
	// open fail once Serve returns.
	Detached func(error)
}

// CheckMountPoint returns a *MountPointError unless dir is an empty
// directory, or the error of reading it (a mount that ended uncleanly
// gives ENOTCONN).
func CheckMountPoint(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return &MountPointError{Dir: dir, Problem: "does not exist"}
	}
	if err != nil {
		return fmt.Errorf("checking mount point: %w", err)
	}
	if !fi.IsDir() {
		return &MountPointError{Dir: dir, Problem: "is not a directory"}
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("checking mount point: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return &MountPointError{Dir: dir, Problem: "is not empty"}
	}
	if err != nil && err != io.EOF {
		return fmt.Errorf("checking mount point: %w", err)
	}
	return nil
}

// Available returns an error wrapping ErrUnavailable unless what a mount
// needs is here: the device /dev/fuse, and fusermount3 (or fusermount)
// on PATH, which mounts and unmounts. Serve checks it too; a command
// checks it first, before it opens its source.
func Available() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("%w: %v (load the fuse module, or give a container --device /dev/fuse)", ErrUnavailable, err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		if _, err2 := exec.LookPath("fusermount"); err2 != nil {
			return fmt.Errorf("%w: neither fusermount3 nor fusermount is on PATH (install fuse3)", ErrUnavailable)
		}
	}
	return nil
}

// Serve mounts files of r read-only on dir, an empty directory, and
// serves them until ctx ends (then it unmounts) or the mount is ended
// from outside (fusermount3 -u dir, umount dir). It returns nil once
// the mount is gone; r is no longer read after that, unless the mount was
// busy and detached (see Options.Detached).
func Serve(ctx context.Context, dir string, r io.ReaderAt, files []File, o Options) error {
	if err := CheckMountPoint(dir); err != nil {
		return err
	}
	if err := Available(); err != nil {
		return err
	}
	t := &tree{r: r, mtime: o.ModTime, uid: uint32(os.Getuid()), gid: uint32(os.Getgid()), files: files, readErr: o.ReadError}
	if t.mtime.IsZero() {
		t.mtime = time.Now()
	}
	timeout := cacheFor
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			// ro: the kernel refuses every change before it reaches us;
			// default_permissions: it checks the 0444/0555 modes.
			Options:       []string{"ro", "default_permissions"},
			FsName:        "ebsimager",
			Name:          "ebsimager",
			MaxWrite:      maxRead, // go-fuse sets max_read to it
			MaxReadAhead:  maxRead,
			MaxBackground: maxBackground,
			DisableXAttrs: true,
			// Replies are copied from memory: splicing a 1 MiB reply
			// overflows the default pipe and go-fuse logs each one.
			DisableSplice: true,
			// A library does not print: failed reads reach ReadError.
			Logger: log.New(io.Discard, "", 0),
		},
		Logger:          log.New(io.Discard, "", 0),
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
	}
	srv, err := fs.Mount(dir, &root{t: t}, opts)
	if err != nil {
		return fmt.Errorf("mounting %s: %w: %v", dir, ErrUnavailable, err)
	}
	widenReadahead(dir)
	ended := make(chan struct{})
	go func() {
		srv.Wait()
		close(ended)
	}()
	if o.Ready != nil {
		o.Ready()
	}
	select {
	case <-ended:
		return nil // unmounted from outside
	case <-ctx.Done():
	}
	if err := srv.Unmount(); err != nil {
		// Busy: take it out of the name space now; the kernel drops the
		// connection when the last file closes or this process exits.
		if derr := detach(dir); derr != nil {
			return fmt.Errorf("unmounting %s: %v; detaching it: %w", dir, err, derr)
		}
		if o.Detached != nil {
			o.Detached(fmt.Errorf("%s was busy (a file or directory in it is open): detached it; reads of the files left open fail from now on", dir))
		}
		return nil
	}
	<-ended
	return nil
}

// detach unmounts dir lazily, as fusermount3 -u -z does.
func detach(dir string) error {
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err == nil {
		return nil
	}
	bin := "fusermount3"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "fusermount"
	}
	if out, err := exec.Command(bin, "-u", "-z", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("%s -u -z: %w: %s", bin, err, out)
	}
	return nil
}

// widenReadahead lets the kernel read ahead maxRead at a time on the
// mount on dir, as it may read: FUSE caps a mount's readahead at the
// kernel's default of 128 KiB, so without this a sequential reader is
// served in 128 KiB requests. Only root may change it; for anyone else
// the mount works as well, in smaller requests.
func widenReadahead(dir string) {
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%d", maxRead>>10)
	f.Close()
}
