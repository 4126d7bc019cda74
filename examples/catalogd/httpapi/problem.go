package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/google/uuid"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// Problem types (the "type" member of every problem document). They are
// URNs: stable names to branch on, not pages to fetch.
const (
	TypeBadRequest        = "urn:cqrskit:problem:bad-request"         // 400
	TypeForbidden         = "urn:cqrskit:problem:forbidden"           // 403
	TypeNotFound          = "urn:cqrskit:problem:not-found"           // 404
	TypeMethodNotAllowed  = "urn:cqrskit:problem:method-not-allowed"  // 405
	TypeConflict          = "urn:cqrskit:problem:conflict"            // 409, a concurrent change won
	TypeAlreadyExists     = "urn:cqrskit:problem:already-exists"      // 409
	TypeRejected          = "urn:cqrskit:problem:rejected"            // 409, with Code
	TypePreconditionFail  = "urn:cqrskit:problem:precondition-failed" // 412
	TypeTooLarge          = "urn:cqrskit:problem:too-large"           // 413
	TypeUnsupportedMedia  = "urn:cqrskit:problem:unsupported-media"   // 415
	TypeMisdirected       = "urn:cqrskit:problem:misdirected"         // 421, wrong role
	TypeValidation        = "urn:cqrskit:problem:validation"          // 422, with Errors
	TypeInternal          = "urn:cqrskit:problem:internal"            // 500
	TypeNotReached        = "urn:cqrskit:problem:not-reached"         // 503, read-your-writes timeout
	TypeUnavailable       = "urn:cqrskit:problem:unavailable"         // 503, store down
	TypeNotReady          = "urn:cqrskit:problem:not-ready"           // 503, /readyz
	problemContentType    = "application/problem+json"
	retryAfterUnavailable = 1 // seconds
)

// Problem is an RFC 9457 problem document. Errors, Code and NotReady are extension members, present only where they apply.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Errors lists the invalid fields of a 422, by their JSON names.
	Errors []FieldProblem `json:"errors,omitempty"`
	// Code is the machine-readable rule of a rejection (409), such as
	// "insufficient_stock".
	Code string `json:"code,omitempty"`
	// NotReady names the projectors that are not caught up (/readyz).
	NotReady []string `json:"not_ready,omitempty"`

	retryAfter int // seconds; 0 sends no Retry-After
}

// FieldProblem is one invalid field of a 422 problem.
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// fail answers with the problem err maps to, logging what must not reach
// the client.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := a.classify(r, err)
	a.problem(w, r, p)
}

// classify maps an error from the command, store or projection packages
// to a problem document. Order matters: a StaleError also matches
// store.ErrConflict, an AfterCommitError wraps anything.
func (a *api) classify(r *http.Request, err error) Problem {
	ctx := r.Context()
	var (
		ve  *command.ValidationError
		ie  *store.InvalidError
		fe  *command.ForbiddenError
		nf  *store.NotFoundError
		se  *command.StaleError
		ae  *store.AlreadyExistsError
		re  *command.RejectedError
		mbe *http.MaxBytesError
		nre *projection.NotReachedError
	)
	if ctx.Err() != nil && !errors.As(err, &mbe) {
		// The client went away (or the server is stopping): whatever the
		// store made of the cancelled call is not its failure. Nobody
		// reads the answer; it is written for the access log.
		a.log.DebugContext(ctx, "catalogd: request cancelled", "err", err)
		return Problem{Type: TypeUnavailable, Status: http.StatusServiceUnavailable, Detail: "the request was cancelled", retryAfter: retryAfterUnavailable}
	}
	switch {
	case errors.As(err, &mbe):
		return Problem{Type: TypeTooLarge, Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit)}
	case errors.As(err, &ve):
		p := Problem{Type: TypeValidation, Status: http.StatusUnprocessableEntity, Detail: "the command is invalid"}
		for _, f := range ve.Fields {
			p.Errors = append(p.Errors, FieldProblem{Field: jsonField(f.Field), Message: f.Message})
		}
		return p
	case errors.As(err, &ie):
		// The store refuses a value it cannot keep faithfully: the
		// cause may be a driver error, so only What and Reason are told.
		return Problem{Type: TypeValidation, Status: http.StatusUnprocessableEntity, Detail: "a value cannot be stored",
			Errors: []FieldProblem{{Field: jsonField(ie.What), Message: ie.Reason}}}
	case errors.Is(err, command.ErrValidation):
		return Problem{Type: TypeValidation, Status: http.StatusUnprocessableEntity, Detail: "the command is invalid"}
	case errors.As(err, &fe):
		return Problem{Type: TypeForbidden, Status: http.StatusForbidden, Detail: fe.Reason}
	case errors.Is(err, command.ErrForbidden):
		return Problem{Type: TypeForbidden, Status: http.StatusForbidden, Detail: "forbidden"}
	case errors.As(err, &nf):
		return Problem{Type: TypeNotFound, Status: http.StatusNotFound, Detail: nf.What + " " + nf.Key + " not found"}
	case errors.Is(err, store.ErrNotFound):
		return Problem{Type: TypeNotFound, Status: http.StatusNotFound, Detail: "not found"}
	case errors.As(err, &se):
		return Problem{Type: TypePreconditionFail, Status: http.StatusPreconditionFailed,
			Detail: fmt.Sprintf("the product is at version %d, If-Match named %d", se.Actual, se.Expected)}
	case errors.As(err, &ae):
		return Problem{Type: TypeAlreadyExists, Status: http.StatusConflict, Detail: strings.TrimSuffix(ae.Table, "s") + " " + ae.Key + " already exists"}
	case errors.Is(err, store.ErrAlreadyExists):
		return Problem{Type: TypeAlreadyExists, Status: http.StatusConflict, Detail: "already exists"}
	case errors.As(err, &re):
		return Problem{Type: TypeRejected, Status: http.StatusConflict, Code: re.Code, Detail: re.Message}
	case errors.Is(err, store.ErrConflict):
		return Problem{Type: TypeConflict, Status: http.StatusConflict, Detail: "a concurrent change won; read again and retry", retryAfter: retryAfterUnavailable}
	case errors.As(err, &nre), errors.Is(err, projection.ErrNotReached):
		if nre != nil && nre.Cause != nil {
			a.log.WarnContext(ctx, "catalogd: read-your-writes wait failed", "err", err)
		}
		return Problem{Type: TypeNotReached, Status: http.StatusServiceUnavailable,
			Detail: "the views of this process have not reached the position yet", retryAfter: retryAfterUnavailable}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrClosed):
		a.log.WarnContext(ctx, "catalogd: store unavailable", "err", err)
		return Problem{Type: TypeUnavailable, Status: http.StatusServiceUnavailable, Detail: "the store is unavailable", retryAfter: retryAfterUnavailable}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// The client went away or the server is shutting down.
		return Problem{Type: TypeUnavailable, Status: http.StatusServiceUnavailable, Detail: "the request was cancelled", retryAfter: retryAfterUnavailable}
	}
	id := a.logInternal(r, err)
	return Problem{Type: TypeInternal, Status: http.StatusInternalServerError, Instance: id, Detail: "internal error; quote the instance when reporting it"}
}

// logInternal logs err under a fresh instance ID and returns the ID.
func (a *api) logInternal(r *http.Request, err error) string {
	id := "urn:uuid:" + uuid.NewString()
	a.log.ErrorContext(r.Context(), "catalogd: internal error", "instance", id, "method", r.Method, "path", r.URL.Path, "err", err)
	return id
}

// problem writes p.
func (a *api) problem(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Instance == "" {
		p.Instance = r.URL.Path
	}
	h := w.Header()
	h.Del("ETag")
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	b, err := json.Marshal(p)
	if err != nil { // cannot happen: strings and ints only
		b = []byte(`{"type":"` + TypeInternal + `","status":500}`)
	}
	h.Set("Content-Type", problemContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_, _ = w.Write(b)
}

// jsonField turns a command's Go field path ("Options[0].PriceCents",
// "SellerID") into the JSON name the client sent ("options[0].price_cents",
// "seller_id").
func jsonField(goName string) string {
	var b strings.Builder
	prev := rune(0)
	for _, c := range goName {
		if unicode.IsUpper(c) {
			if unicode.IsLower(prev) || unicode.IsDigit(prev) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(c))
		} else {
			b.WriteRune(c)
		}
		prev = c
	}
	return b.String()
}

// bufs recycles response buffers: a product view is about a kilobyte of
// JSON, and at tens of thousands of reads a second fresh buffers are most of
// what the handler allocates, which is garbage-collector work that shows
// up in the read latency's tail.
var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooled keeps a rare huge answer from pinning its buffer in the pool.
const maxPooled = 64 << 10

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooled {
			bufs.Put(buf)
		}
	}()
	if err := json.NewEncoder(buf).Encode(v); err != nil { // adds the newline
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
