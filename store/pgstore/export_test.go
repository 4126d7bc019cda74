package pgstore

import "context"

// SetBeforeCommit makes every unit of work of s that records events call f
// after its events are appended and before it commits: a slow commit, for
// tests. Set it before the store is used.
func SetBeforeCommit(s *Store, f func(ctx context.Context)) { s.beforeCommit = f }

// MigrationCount returns the number of schema migrations this build knows.
func MigrationCount() int { return len(migrations) }

var IsUnavailable = isUnavailable
