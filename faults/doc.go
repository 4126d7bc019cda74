// Package faults holds the fault tests of cqrskit's projections against a
// throw-away PostgreSQL cluster that the tests kill, freeze and restart:
// kill -9 under writers, replay of parked events, a horizon held back by a
// transaction in another database, a frozen server, a stuck handler and an
// event type the reader does not know.
//
// The package has no API. Run the tests with run.sh, which creates the
// cluster (never touching the one on port 5432), exports its coordinates
// in CQRSKIT_FAULT_PG_* variables and drops it afterwards; without
// CQRSKIT_FAULT_PG_URL the tests that need it skip. Each scenario prints
// one line starting with "FAULT-SUMMARY:" with the events written, lost,
// duplicated and parked and the time to recover.
package faults
