// Package emulatortest owns the test wiring for the EBS direct API
// emulator: Start serves one on a free loopback port for the length of a
// test, and Client builds a real AWS SDK EBS client pointed at it, with
// static fake credentials and retries turned off, so the test sees every
// raw response.
package emulatortest
