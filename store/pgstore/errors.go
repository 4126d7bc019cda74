package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cqrskit/cqrs/store"
)

// SQLSTATE codes the store classifies.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

// ErrTooManyEvents is returned by Update when a unit of work records more
// than MaxEventsPerUpdate events.
var ErrTooManyEvents = errors.New("pgstore: too many events in one unit of work")

// wrap adds the operation to a driver error and makes sure the sentinel that
// classifies it is reachable with errors.Is next to the driver's own error
// (reachable with errors.As, e.g. *pgconn.PgError):
//
//   - a failure while ctx is done matches ctx.Err(), whatever the driver
//     made of the cancellation;
//   - data exceptions (SQLSTATE class 22: a NUL byte, invalid UTF-8, a
//     number out of range) become a *store.InvalidError wrapping the driver
//     error: the value can never be stored, so the error is permanent;
//   - infrastructure failures (see isUnavailable) match
//     store.ErrUnavailable;
//   - serialization failures and deadlocks match store.ErrConflict, because
//     re-running the unit of work may succeed, which is what ErrConflict
//     tells callers such as command.Retry.
func wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if isDataException(err) {
		return &store.InvalidError{What: "value", Reason: "PostgreSQL refused it (" + op + ")", Err: err}
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("pgstore: %s: %w: %w", op, cerr, err)
	}
	if isUnavailable(err) {
		return fmt.Errorf("pgstore: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	if code := sqlState(err); code == codeSerializationFailure || code == codeDeadlockDetected {
		return fmt.Errorf("pgstore: %s: %w: %w", op, store.ErrConflict, err)
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

// isDataException reports a PostgreSQL data exception (SQLSTATE class 22).
// pgx reports text it cannot encode for the server in the same terms.
func isDataException(err error) bool {
	return strings.HasPrefix(sqlState(err), "22")
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// conflict returns ce with the driver error that revealed it attached, so
// that both the *store.ConflictError and the cause can be found.
func conflict(ce *store.ConflictError, cause error) error {
	if cause == nil {
		return ce
	}
	return fmt.Errorf("%w: %w", ce, cause)
}
