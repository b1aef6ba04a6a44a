// Package window puts blocks that arrive in any order, from concurrent
// fetches, back into ascending order for a sink that can only append (an
// E01 image), holding at most a fixed number of blocks in memory. The
// lister announces each listed index, in order, before any worker can
// fetch it; a block that is next in that order goes straight through, any
// other waits in the window, and a worker whose block does not fit waits
// for the window to drain. The block at the head never waits, so the
// window always drains.
package window
