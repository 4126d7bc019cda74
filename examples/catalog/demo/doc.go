// Package demo is the product-catalog walk-through that the catalog commands
// print: it seeds a catalog, dispatches commands (some rejected on purpose,
// each rejection printed as a sentence by Describe), changes stock under
// concurrency, and prints the read models, a read-your-writes round trip
// through an async copy of the views, a rebuild, and the status of every
// projector it ran. It runs on any store.Store and store.Log, so the
// in-memory and PostgreSQL commands share it.
package demo
