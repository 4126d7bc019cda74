package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cqrskit/cqrs/store"
	"github.com/redis/go-redis/v9"
)

// Namespace is the part of a Redis keyspace that holds one projector's read
// models. Its keys are laid out as
//
//	<prefix>:<projector>:gen          the current generation (absent: 1)
//	<prefix>:<projector>:gens         the last generation number handed out
//	<prefix>:<projector>:g<N>:cp      checkpoints of generation N (a hash)
//	<prefix>:<projector>:g<N>:<rel>   the read models of generation N
//
// A rebuild writes generation N+1 while readers read N, then switches the
// generation key; every read resolves the generation and reads the data in
// one server-side script, so a reader sees one generation whole and one
// round trip answers a query.
//
// A Namespace is safe for concurrent use; it holds no state but the client
// and names.
type Namespace struct {
	rdb    redis.UniversalClient
	prefix string
	name   string
	base   string // prefix:name
	gen    string // genKey(), built once: every read names it
}

// NewNamespace returns the namespace of projector name under prefix (for
// example an application's or a test's name). The prefix must not be
// empty; name must not be empty or contain ':', so that no two namespaces
// share a key. Bad names give an error matching store.ErrInvalid.
func NewNamespace(rdb redis.UniversalClient, prefix, projector string) (*Namespace, error) {
	switch {
	case rdb == nil:
		return nil, invalid("nil Redis client")
	case prefix == "":
		return nil, invalid("empty key prefix")
	case projector == "" || strings.Contains(projector, ":"):
		return nil, invalid(fmt.Sprintf("projector name %q is empty or contains ':'", projector))
	}
	base := prefix + ":" + projector
	return &Namespace{rdb: rdb, prefix: prefix, name: projector, base: base, gen: base + ":gen"}, nil
}

// Projector returns the projector name the namespace belongs to.
func (ns *Namespace) Projector() string { return ns.name }

// Prefix returns the key prefix.
func (ns *Namespace) Prefix() string { return ns.prefix }

// Client returns the Redis client.
func (ns *Namespace) Client() redis.UniversalClient { return ns.rdb }

func (ns *Namespace) genKey() string  { return ns.gen }
func (ns *Namespace) gensKey() string { return ns.base + ":gens" }

// genPrefix is the prefix of every key of generation gen.
func (ns *Namespace) genPrefix(gen uint64) string {
	return ns.base + ":g" + strconv.FormatUint(gen, 10) + ":"
}

// Generation returns the generation readers currently read.
func (ns *Namespace) Generation(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s, err := ns.rdb.Get(ctx, ns.genKey()).Result()
	if errors.Is(err, redis.Nil) {
		return 1, nil
	}
	if err != nil {
		return 0, wrap("read generation", err)
	}
	g, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redisstore: generation key %s holds %q: %w", ns.genKey(), s, err)
	}
	return g, nil
}

// readOp is one read of a multi-read: an operation of readScript, a key
// relative to the generation, and two arguments.
type readOp struct {
	op, rel, a, b string
}

// read runs ops in the current generation in one round trip and returns
// one reply per op.
func (ns *Namespace) read(ctx context.Context, ops ...readOp) ([]any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	args := make([]any, 0, 2+4*len(ops))
	args = append(args, ns.genKey(), ns.base)
	for _, o := range ops {
		args = append(args, o.op, o.rel, o.a, o.b)
	}
	res, err := readScript.RunRO(ctx, ns.rdb, nil, args...).Slice()
	if err != nil {
		return nil, wrap("read", err)
	}
	if len(res) != len(ops)+1 {
		return nil, fmt.Errorf("redisstore: read returned %d replies for %d reads", len(res)-1, len(ops))
	}
	return res[1:], nil
}

// hget reads one field of a hash in the current generation, in one round
// trip: the common read (a view by key), given its own script so that the
// reply is one bulk string rather than a table to walk.
func (ns *Namespace) hget(ctx context.Context, rel, field string) (string, bool, error) {
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	s, err := hgetScript.RunRO(ctx, ns.rdb, nil, ns.gen, ns.base, rel, field).Text()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, wrap("read", err)
	}
	return s, true, nil
}

// write applies ops to the current generation outside a projector, in one
// atomic script.
func (ns *Namespace) write(ctx context.Context, ops []any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	args := make([]any, 0, 2+len(ops))
	args = append(args, ns.genKey(), ns.base)
	args = append(args, ops...)
	if err := writeScript.Run(ctx, ns.rdb, nil, args...).Err(); err != nil {
		return wrap("write", err)
	}
	return nil
}

// Writes of a read model take a context: inside a Projector's apply
// function the context carries the batch's Tx and the write is buffered
// in it; anywhere else the write goes to Redis at once.
type txKey struct{}

// TxFrom returns the Tx the context carries: the batch a Projector is
// applying. Read models written with such a context buffer their writes in
// the Tx, to be committed with the batch's checkpoint.
func TxFrom(ctx context.Context) (*Tx, bool) {
	tx, ok := ctx.Value(txKey{}).(*Tx)
	return tx, ok
}

// writeOps buffers ops in the context's Tx or applies them at once.
func (ns *Namespace) writeOps(ctx context.Context, ops ...any) error {
	if tx, ok := TxFrom(ctx); ok {
		if tx.ns.base != ns.base {
			return invalid(fmt.Sprintf("a read model of namespace %q written inside a batch of %q", ns.base, tx.ns.base))
		}
		tx.add(ops...)
		return nil
	}
	return ns.write(ctx, ops)
}

func invalid(msg string) error {
	return &store.InvalidError{What: "redisstore argument", Reason: msg}
}

// wrap wraps a driver error, keeping both it and context errors matchable.
// A failure of the connection or of a server that is loading, busy or
// read-only also matches store.ErrUnavailable, so a projection runner
// retries it instead of applying its failure policy; a closed client
// matches store.ErrClosed.
func wrap(op string, err error) error {
	return &driverError{op: op, err: err}
}

type driverError struct {
	op  string
	err error
}

func (e *driverError) Error() string { return "redisstore: " + e.op + ": " + e.err.Error() }
func (e *driverError) Unwrap() error { return e.err }

// Is classifies the driver error.
func (e *driverError) Is(target error) bool {
	switch target {
	case store.ErrClosed:
		return errors.Is(e.err, redis.ErrClosed)
	case store.ErrUnavailable:
		return unavailable(e.err)
	}
	return false
}

func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.Nil) {
		return false
	}
	var re redis.Error
	if errors.As(err, &re) {
		for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"} {
			if redis.HasErrorPrefix(err, p) {
				return true
			}
		}
		return false
	}
	return true // the connection failed: refused, reset, timed out
}

// escapeGlob quotes the characters SCAN MATCH treats as patterns.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
