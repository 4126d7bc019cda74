// Package bench is cqrskit's benchmark suite: the catalog scenario of
// examples/catalog (sellers, products, reviews, shipping options, price
// history) measured through cqrskit and, in the same run, through baselines:
//
//   - floor: a minimal hand-written plain-Go implementation (validation, maps
//     under a mutex, a direct call into a hand-written view update), the
//     physical floor ratios are taken against;
//   - watermill: the same commands through Watermill's components/cqrs on its
//     in-memory gochannel pub/sub, timed until the read model shows the change;
//   - sql: the product page as one correct query over the normalized
//     5-table schema, on SQLite (modernc.org/sqlite) and, when
//     CQRSKIT_POSTGRES_URL is set, on PostgreSQL (pgx v5).
//
// The suite is its own module so that the comparison dependencies never reach
// the core module. Benchmarks live in bench_test.go; run.sh runs them all and
// cmd/ratios turns the output into the ratio table of BENCHMARKS.md.
//
// Environment:
//
//	CQRSKIT_BENCH_PRODUCTS  catalog size (default 100000); the size sweep of
//	                        Query/TopRated10 uses a tenth and ten times it,
//	                        the projection benchmarks ten events per product.
//	CQRSKIT_POSTGRES_URL    PostgreSQL to compare with; a private schema is
//	                        created and dropped. Unset: PostgreSQL is skipped.
package bench
