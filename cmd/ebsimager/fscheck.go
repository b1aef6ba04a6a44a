package main

import (
	"fmt"
	"strings"

	"github.com/ebsimager/ebsimager/internal/image/raw"
	"github.com/ebsimager/ebsimager/internal/inspect"
)

// checkFileSystem checks that the image holds a file system whose type
// starts with want ("ext" for ext2/3/4, "ntfs"), in the whole volume or in
// a partition, and says where.
func checkFileSystem(files []string, want string) (string, error) {
	r, err := raw.Open(files[0])
	if err != nil {
		return "", err
	}
	defer r.Close()
	l, err := inspect.Inspect(r, r.Size())
	if err != nil {
		return "", err
	}
	if fs := l.FileSystem; fs != nil && strings.HasPrefix(fs.Type, want) {
		return fmt.Sprintf("%s in the whole volume", fs.Type), nil
	}
	for _, p := range l.Partitions {
		if fs := p.FileSystem; fs != nil && strings.HasPrefix(fs.Type, want) {
			return fmt.Sprintf("%s in partition %d at offset %d", fs.Type, p.Number, p.Offset), nil
		}
	}
	return "", mismatchError{fmt.Sprintf("the image holds no %s file system, in the volume or in any partition (it was rebuilt as served; nothing was overlaid)", strings.ToUpper(want))}
}
