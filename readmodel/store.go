package readmodel

import (
	"context"
)

// Store is the pluggable store for one collection of views of type V, keyed
// by K. Projections write views with Put and Delete; queries read them with
// Get. [Map] is the in-memory implementation; durable backends (Redis, SQL)
// implement the same interface and are checked by the conformance suite
// readmodeltest.Run.
//
// The interface is deliberately small: optional capabilities (batch writes,
// checkpoints written atomically with a view, iteration) belong in separate
// interfaces that callers discover with a type assertion.
type Store[K comparable, V any] interface {
	// Get returns the view stored under key, or an error matching
	// store.ErrNotFound when there is none (implementations may wrap it
	// to add detail). A store that does I/O returns an error matching
	// ctx.Err() once ctx is done; a store that never blocks may ignore
	// ctx.
	Get(ctx context.Context, key K) (V, error)

	// Put stores v under key, replacing any previous view. After Put
	// returns nil, a Get that starts later observes v (or a later write).
	Put(ctx context.Context, key K, v V) error

	// Delete removes the view stored under key. Deleting a key that is
	// absent is not an error.
	Delete(ctx context.Context, key K) error
}
