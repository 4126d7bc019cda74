package pgstore

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// isUnavailable reports whether err is a failure of the infrastructure
// rather than of the statement or its data: the server could not be
// reached or went away (connection refused or reset, broken pipe, EOF,
// network timeout, a connection the driver already closed, a closed pool),
// or it answered that it cannot serve now (SQLSTATE class 08 connection
// exceptions, 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot
// connect now, 53300 too many connections). wrap marks such errors with
// store.ErrUnavailable, which projection runners retry for as long as they
// last instead of applying their failure policy. A cancelled or expired
// context of the caller is not an infrastructure failure (wrap reports
// ctx.Err() first).
func isUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch code := pgErr.Code; {
		case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02", code == "57P03", code == "53300":
			return true
		}
		return false // the server answered: a failure of the statement
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr), pgconn.Timeout(err):
		return true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case pgconn.SafeToRetry(err):
		return true // failed before the statement reached the server
	}
	// pgxpool reports a closed pool with puddle's ErrClosedPool, which this
	// module does not import.
	return strings.HasSuffix(err.Error(), "closed pool")
}
