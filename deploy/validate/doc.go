// Package validate checks the specs in deploy/ (the Kubernetes Indexed
// Job and the AWS Batch job definition) by strict decoding into their
// API types, and their exit-code mappings against cmd/ebsimager/exit.go.
// It is a module of its own so that the Kubernetes and Batch API types
// never enter the main module or the ebsimager binary; its tests are all
// there is to it.
package validate
