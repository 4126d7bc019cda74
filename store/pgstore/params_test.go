package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrskit/cqrs/event"
)

// TestArrayParamsEncodeLikePlainSlices checks the append's array types
// against the reference, pgx's encoding of the plain slices, on random
// arrays: the same bytes in both formats. (Where pgx does not know the
// parameter's type, appendArgs passes the plain slices:
// TestAppendInEveryQueryExecMode.)
func TestArrayParamsEncodeLikePlainSlices(t *testing.T) {
	m := pgtype.NewMap()
	r := rand.New(rand.NewPCG(1, 2))
	randString := func() string {
		var b strings.Builder
		for range r.IntN(20) {
			b.WriteRune([]rune{'a', 'é', '"', '\\', ',', '{', '}', ' ', '€', 'z'}[r.IntN(10)])
		}
		return b.String()
	}
	for round := range 200 {
		n := 1 + r.IntN(40)
		if round == 0 {
			n = 1
		}
		ints := make([]int64, n)
		strs := make([]string, n)
		ids := make([][16]byte, n)
		for i := range n {
			ints[i] = r.Int64() - math.MaxInt64/2
			if r.IntN(4) == 0 {
				ints[i] = int64(r.IntN(3)) - 1
			}
			strs[i] = randString()
			for j := range ids[i] {
				ids[i][j] = byte(r.Uint32())
			}
		}
		for _, c := range []struct {
			oid        uint32
			got, plain any
		}{
			{pgtype.Int8ArrayOID, int8Array(ints), ints},
			{pgtype.TextArrayOID, textArray(strs), strs},
			{pgtype.UUIDArrayOID, uuidArray(ids), ids},
		} {
			for _, oid := range []uint32{c.oid} {
				for _, format := range []int16{pgtype.BinaryFormatCode, pgtype.TextFormatCode} {
					want, err := m.Encode(oid, format, c.plain, nil)
					if err != nil {
						t.Fatalf("reference %T oid %d format %d: %v", c.plain, oid, format, err)
					}
					got, err := m.Encode(oid, format, c.got, nil)
					if err != nil {
						t.Fatalf("%T oid %d format %d: %v", c.got, oid, format, err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("%T oid %d format %d:\n got %q\nwant %q", c.got, oid, format, got, want)
					}
				}
			}
		}
	}
}

// TestArrayParamsDoNotAllocatePerElement pins down the point of the array
// types: pgx encodes them with a fixed number of allocations, however many
// elements they have.
func TestArrayParamsDoNotAllocatePerElement(t *testing.T) {
	m := pgtype.NewMap()
	n := 100
	ints, strs, ids := make(int8Array, n), make(textArray, n), make(uuidArray, n)
	for i := range n {
		ints[i], strs[i] = int64(i)<<40, strings.Repeat("x", i%7)
	}
	buf := make([]byte, 0, 1<<16)
	for _, c := range []struct {
		oid uint32
		v   any
	}{{pgtype.Int8ArrayOID, ints}, {pgtype.TextArrayOID, strs}, {pgtype.UUIDArrayOID, ids}} {
		if _, err := m.Encode(c.oid, pgtype.BinaryFormatCode, c.v, buf); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(20, func() {
			_, _ = m.Encode(c.oid, pgtype.BinaryFormatCode, c.v, buf[:0])
		})
		if allocs > 3 {
			t.Errorf("%T of %d: %v allocations per encoding, want at most 3", c.v, n, allocs)
		}
	}
}

type htmlEvent struct {
	S string            `json:"s"`
	M map[string]int    `json:"m,omitempty"`
	F float64           `json:"f"`
	R json.RawMessage   `json:"r,omitempty"`
	P *htmlEvent        `json:"p,omitempty"`
	X map[string]string `json:"x,omitempty"`
}

func (htmlEvent) EventType() string { return "params_test.html" }

type customEvent struct{ N int }

func (customEvent) EventType() string { return "params_test.custom" }

func (c customEvent) MarshalJSON() ([]byte, error) {
	if c.N < 0 {
		return nil, errors.New("negative")
	}
	return []byte(`{ "n" :  ` + strings.Repeat("1", c.N%5+1) + ` }`), nil
}

type unknownEvent struct{}

func (unknownEvent) EventType() string { return "params_test.unknown" }

// TestEncodePayloadIsRegistryMarshal checks encodePayload against the
// reference, the registry's Marshal: the same bytes for every payload, in
// one buffer, the first of each type from the registry itself; the same
// errors for an unknown type, a value JSON cannot encode and a failing
// MarshalJSON, and nothing written for them.
func TestEncodePayloadIsRegistryMarshal(t *testing.T) {
	reg := event.NewRegistry()
	if err := event.Register[htmlEvent](reg); err != nil {
		t.Fatal(err)
	}
	if err := event.Register[customEvent](reg); err != nil {
		t.Fatal(err)
	}
	s := &Store{reg: reg}
	events := []event.Event{
		htmlEvent{S: "<a href=\"x\">&amp;</a>\u2028\u2029", M: map[string]int{"b": 2, "a": 1}, F: 1e21},
		customEvent{N: 3},
		htmlEvent{S: "\x00\xff", R: json.RawMessage(` [1, 2] `), P: &htmlEvent{S: "inner"}},
		customEvent{N: 7},
		htmlEvent{X: map[string]string{"<": ">"}, F: math.Copysign(0, -1)},
	}
	c := getAppendCols(len(events) * 3)
	defer putAppendCols(c)
	var want [][]byte
	for round := range 3 {
		known := ""
		for _, e := range events {
			typ := e.EventType()
			if err := s.encodePayload(c, e, typ, typ == known); err != nil {
				t.Fatalf("round %d: %T: %v", round, e, err)
			}
			known = typ
			b, err := reg.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, b)
		}
	}
	all, start := c.json.String(), 0
	for j, end := range c.ends {
		if got := all[start:end]; got != string(want[j]) {
			t.Fatalf("payload %d: got %q, want %q", j, got, want[j])
		}
		start = end + 1
	}
	if len(c.ends) != len(want) || start != len(all) {
		t.Fatalf("%d payloads in %d bytes, want %d in %d", len(c.ends), len(all), len(want), start)
	}

	for _, e := range []event.Event{unknownEvent{}, htmlEvent{F: math.NaN()}, customEvent{N: -1}} {
		before := c.json.Len()
		_, wantErr := reg.Marshal(e)
		for _, checked := range []bool{false, true} {
			if checked && errors.Is(wantErr, event.ErrUnknownType) {
				continue // a type is only taken as checked once the registry knew it
			}
			err := s.encodePayload(c, e, e.EventType(), checked)
			if err == nil || err.Error() != wantErr.Error() {
				t.Fatalf("%T (checked %v): got %v, want %v", e, checked, err, wantErr)
			}
			var ue *json.UnsupportedValueError
			if errors.As(err, &ue) != errors.As(wantErr, &ue) || errors.Is(err, event.ErrUnknownType) != errors.Is(wantErr, event.ErrUnknownType) {
				t.Fatalf("%T (checked %v): %v does not match %v", e, checked, err, wantErr)
			}
			if c.json.Len() != before || len(c.ends) != len(want) {
				t.Fatalf("%T (checked %v): a failed encoding wrote to the buffer", e, checked)
			}
		}
	}
	if s.types.has(unknownEvent{}.EventType()) {
		t.Fatal("an unknown type was remembered as known")
	}
}

// TestEncodeParamsLikePgx checks sendAppendRaw's encoding of the append's
// parameters against the reference, pgx's encoding of the same values for
// the same parameter types, on random columns.
func TestEncodeParamsLikePgx(t *testing.T) {
	m := pgtype.NewMap()
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 100 {
		n := 1 + r.IntN(50)
		c := getAppendCols(n)
		for i := range n {
			c.idxs[i], c.bases[i], c.ks[i] = r.Int64(), int64(r.IntN(5))-1, -r.Int64()
			c.streams[i] = strings.Repeat("s\"{,}\\é", r.IntN(4))
			c.types[i] = strings.Repeat("t", r.IntN(30))
			c.datas[i] = `{"a":` + strings.Repeat("1", 1+r.IntN(300)) + `}`
			for j := range c.ids[i] {
				c.ids[i][j] = byte(r.Uint32())
			}
		}
		mdb := []byte(`{"correlation_id":"` + strings.Repeat("c", r.IntN(10)) + `"}`)
		now := time.Unix(r.Int64N(1<<36)-1<<35, r.Int64N(1e9))
		if round == 0 {
			now = time.Time{}
		}
		vals, err := c.encodeParams(m, mdb, now)
		if err != nil {
			t.Fatal(err)
		}
		plain := []any{[]int64(c.idxs), []string(c.streams), []int64(c.bases), []int64(c.ks),
			[]string(c.types), []string(c.datas), mdb, now, [][16]byte(c.ids)}
		if len(vals) != len(plain) {
			t.Fatalf("%d parameters, want %d", len(vals), len(plain))
		}
		for i, v := range plain {
			want, err := m.Encode(appendParamOIDs[i], pgtype.BinaryFormatCode, v, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(vals[i], want) {
				t.Fatalf("round %d, parameter $%d:\n got %x\nwant %x", round, i+1, vals[i], want)
			}
		}
		putAppendCols(c)
	}
}

// TestSendAppendRawDeclinesOtherParameterTypes: a statement whose
// parameters are not the append's types is left to pgx (ok false), with
// nothing run but its preparation, and the connection stays usable.
func TestSendAppendRawDeclinesOtherParameterTypes(t *testing.T) {
	url := os.Getenv("CQRSKIT_POSTGRES_URL")
	if url == "" {
		t.Skip("CQRSKIT_POSTGRES_URL is not set")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	c := getAppendCols(1)
	defer putAppendCols(c)
	for _, sql := range []string{
		`SELECT $1::int[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::jsonb, $8::timestamptz, $9::uuid[]`,
		`SELECT 1::bigint FROM (SELECT $1::bigint[], $2::text[]) s`,
		`SELECT $1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::jsonb, $8::timestamptz, $9::uuid[]`,
	} {
		_, ok, err := sendAppendRaw(ctx, conn, sql, appendBegin, appendCommit, c, []byte(`{}`), time.Now())
		if err != nil || ok {
			t.Fatalf("%s: ok %v, err %v; want false, nil", sql, ok, err)
		}
		if st := conn.Conn().PgConn().TxStatus(); st != 'I' {
			t.Fatalf("%s: transaction status %c after a declined append", sql, st)
		}
	}
}
