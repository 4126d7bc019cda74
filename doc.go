// Package cqrs is the root of cqrskit, an embeddable CQRS library.
//
// The library lives in its sub-packages:
//
//   - event: the record envelope, typed routing (event.On), the synchronous
//     in-process bus and the codec registry for durable adapters;
//   - store: the write side: units of work, typed versioned tables and the
//     ordered event log (store.Memory is the in-memory default);
//   - command: typed registration and dispatch, validation, typed errors and
//     middleware;
//   - projection: projectors fed inline or asynchronously from checkpoints,
//     with retries, failure policies, rebuilds and read-your-writes waits;
//   - readmodel: read-model stores and building blocks (lock-free map,
//     running average, bounded recent list, ranking, sorted sets);
//   - examples/catalog: the product catalog built on all of the above.
//
// This package holds only the end-to-end tests (cqrs_test.go).
package cqrs
