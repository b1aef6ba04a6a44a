// Package window is the ordering adapter: it turns a Writer that can only
// append blocks in ascending order (an E01 stream, a raw image hashed as
// it is written) into a sink.Sink that takes blocks in any order, from
// concurrent fetches, holding at most a fixed number of them in memory.
// The feeder announces each block to come, in order, before it can be
// put (sink.Caps.Announce); a block that is next in that order goes
// straight through, any other waits in the window, and a Put whose block
// does not fit waits for the window to drain. The block at the head never
// waits, so the window always drains; Cancel wakes the waiters when the
// feeder stops early. A block put in order is written at once without a
// copy, so a feeder that already has blocks in order pays nothing for the
// window.
package window
