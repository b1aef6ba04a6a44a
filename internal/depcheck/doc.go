// Package depcheck holds no code: its test asserts the architecture's
// import rules (STYLE.md §13), so the layering is checked by machine.
package depcheck
