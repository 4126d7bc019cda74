// Package leasetest is the conformance suite for projection.Leaser and
// the projection.FencedCheckpoints that goes with it, shaped like
// testing/slogtest.Run: call Run from a test of your own. The in-memory
// projection.MemoryLeases and every durable lease store (PostgreSQL,
// Redis) must pass it, so the runner can rely on the same fencing
// guarantees whatever the store.
//
// Expiry cannot be faked on a real server's clock, so the expiry cases use
// short real TTLs (a few hundred milliseconds): the suite takes a few
// seconds, most of it spent sleeping, and its subtests run in parallel.
// It uses only the standard library's testing package.
package leasetest
