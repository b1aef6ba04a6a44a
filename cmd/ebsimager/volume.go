package main

import (
	"github.com/ebsimager/ebsimager/internal/store"
	"github.com/ebsimager/ebsimager/internal/volume"
)

// volumeOptions are how a command opens a volume with volume.Open: the
// key flags open compressed or sealed evidence (a missing key is asked
// for, or is an error).
func volumeOptions(keys *openOptions) volume.Options {
	return volume.Options{Unseal: func(ev *store.Evidence) (store.Unseal, error) { return keys.unseal(ev, true) }}
}
