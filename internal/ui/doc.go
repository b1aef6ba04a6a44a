// Package ui draws progress and sizes for people: a redrawn status line on
// a terminal, plain lines at intervals otherwise, nothing when quiet. Only
// the command package imports it; the core reports through callbacks and
// counters and never prints.
package ui
