// Package ui is the terminal side of the tool: it draws progress and
// sizes for people (a redrawn status line on a terminal, plain lines at
// intervals otherwise, nothing when quiet) and asks for secrets without
// echo (TerminalPrompt). Only the command package imports it; the core
// reports through callbacks and counters, takes secrets as functions, and
// never prints.
package ui
