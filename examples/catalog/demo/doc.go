// Package demo is the product-catalog walk-through that the catalog commands
// print: it seeds a catalog, dispatches commands (some rejected on purpose),
// and prints the read models, a read-your-writes round trip and a rebuild.
// It runs on any store.Store and store.Log, so the in-memory and PostgreSQL
// commands share it.
package demo
