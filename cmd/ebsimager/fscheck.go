package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/ebsimager/ebsimager/internal/volume"
)

// checkFileSystem checks that the image holds a file system whose type
// starts with want ("ext" for ext2/3/4, "ntfs"), in the whole volume or in
// a partition, and says where.
func checkFileSystem(files []string, want string) (string, error) {
	l, err := inspectSource(context.Background(), files[0], volume.Options{})
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
