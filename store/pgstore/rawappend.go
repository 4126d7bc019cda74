package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The append statement's parameters, as its description must give them
// for sendAppendRaw: bigint[] $1 $3 $4, text[] $2 $5 $6, jsonb $7,
// timestamptz $8, uuid[] $9.
var appendParamOIDs = [...]uint32{
	pgtype.Int8ArrayOID, pgtype.TextArrayOID, pgtype.Int8ArrayOID, pgtype.Int8ArrayOID,
	pgtype.TextArrayOID, pgtype.TextArrayOID, pgtype.JSONBOID, pgtype.TimestamptzOID, pgtype.UUIDArrayOID,
}

var (
	binaryFormats = []int16{pgtype.BinaryFormatCode, pgtype.BinaryFormatCode, pgtype.BinaryFormatCode,
		pgtype.BinaryFormatCode, pgtype.BinaryFormatCode, pgtype.BinaryFormatCode, pgtype.BinaryFormatCode,
		pgtype.BinaryFormatCode, pgtype.BinaryFormatCode}
	binaryResult = []int16{pgtype.BinaryFormatCode}
)

// appendStatementName names the prepared append statement sql on a
// connection; the schema is part of sql, so stores of different schemas
// do not share it.
func appendStatementName(sql string) string {
	sum := sha256.Sum256([]byte(sql))
	return "cqrskit_append_" + hex.EncodeToString(sum[:12])
}

// sendAppendRaw runs the statements pre, the append sql (insertEvents or
// insertEventsTop) with c's columns, and the statements post, in one
// pipeline, as sendAppend runs the same batch, and returns the highest
// position inserted. It encodes the array parameters itself, in binary,
// into one buffer, instead of through pgx's type map (which spends more
// client time on 100 events than the rest of the unit of work); so that
// pgx need not describe the statement for every unit of work, the statement
// is prepared once per connection under appendStatementName. ok is false,
// with nothing sent but that preparation, when the statement's parameters
// are not of the types expected (a server that resolves them otherwise):
// the caller then sends the batch through pgx. A Store whose pool traces
// its connections (ConnConfig.Tracer) does not call it: pgx's tracer sees
// only what goes through pgx.
func sendAppendRaw(ctx context.Context, conn *pgxpool.Conn, sql string, pre, post []string, c *appendCols, mdb []byte, now time.Time) (last int64, ok bool, err error) {
	if c.stmtSQL != sql {
		c.stmtSQL, c.stmtName = sql, appendStatementName(sql)
	}
	sd, err := conn.Conn().Prepare(ctx, c.stmtName, sql)
	if err != nil {
		return 0, true, err
	}
	if len(sd.ParamOIDs) != len(appendParamOIDs) || [len(appendParamOIDs)]uint32(sd.ParamOIDs) != appendParamOIDs ||
		len(sd.Fields) != 1 || sd.Fields[0].DataTypeOID != pgtype.Int8OID {
		return 0, false, nil
	}
	vals, err := c.encodeParams(conn.Conn().TypeMap(), mdb, now)
	if err != nil {
		return 0, true, err
	}

	p := conn.Conn().PgConn().StartPipeline(ctx)
	for _, s := range pre {
		p.SendQueryParams(s, nil, nil, nil, nil)
	}
	p.SendQueryStatement(sd, vals, binaryFormats, binaryResult)
	for _, s := range post {
		p.SendQueryParams(s, nil, nil, nil, nil)
	}
	err = p.Sync()
	if err == nil {
		last, err = readAppendResults(p, len(pre), len(pre)+1+len(post), post)
	}
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if code := sqlState(err); code == codeInvalidStatementName || code == codeFeatureNotSupported {
		// The statement is gone (DEALLOCATE ALL, DISCARD ALL) or stale,
		// and pgx, which remembers it as prepared, would fail every
		// append on this connection: take the connection out of the pool,
		// as pgx forgets its own cached statements on an error. This unit
		// of work fails; the next one prepares again.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Conn().Close(cctx)
		cancel()
	}
	return last, true, err
}

const (
	codeInvalidStatementName = "26000"
	codeFeatureNotSupported  = "0A000" // "cached plan must not change result type"
)

// readAppendResults reads the results of the n statements of
// sendAppendRaw's pipeline, of which statement insert is the append and
// the last len(post) are post; it stops at the first error.
func readAppendResults(p *pgconn.Pipeline, insert, n int, post []string) (int64, error) {
	var last int64
	for i := range n {
		res, err := p.GetResults()
		if err != nil {
			return 0, err
		}
		rr, isResult := res.(*pgconn.ResultReader)
		if !isResult {
			return 0, errors.New("pgstore: append: unexpected pipeline result")
		}
		if i == insert {
			for rr.NextRow() {
				v := rr.Values()
				if len(v) != 1 || len(v[0]) != 8 {
					rr.Close()
					return 0, errors.New("pgstore: append: unexpected result row")
				}
				last = max(last, int64(binary.BigEndian.Uint64(v[0])))
			}
		}
		tag, err := rr.Close()
		if err != nil {
			return 0, err
		}
		// PostgreSQL answers COMMIT of a failed transaction with
		// ROLLBACK, not with an error (see execCommit).
		if j := i - (n - len(post)); j >= 0 && post[j] == "COMMIT" && tag.String() == "ROLLBACK" {
			return 0, pgx.ErrTxCommitRollback
		}
	}
	return last, nil
}

// encodeParams encodes the append's parameters, in binary, into c.params,
// and returns them: the arrays by hand, the metadata and the time through
// m, as pgx would.
func (c *appendCols) encodeParams(m *pgtype.Map, mdb []byte, now time.Time) ([][]byte, error) {
	b := c.params[:0]
	var ends [len(appendParamOIDs)]int
	b = appendInt8Array(b, c.idxs)
	ends[0] = len(b)
	b = appendTextArray(b, c.streams)
	ends[1] = len(b)
	b = appendInt8Array(b, c.bases)
	ends[2] = len(b)
	b = appendInt8Array(b, c.ks)
	ends[3] = len(b)
	b = appendTextArray(b, c.types)
	ends[4] = len(b)
	b = appendTextArray(b, c.datas)
	ends[5] = len(b)
	var err error
	if b, err = m.Encode(pgtype.JSONBOID, pgtype.BinaryFormatCode, mdb, b); err != nil {
		return nil, err
	}
	ends[6] = len(b)
	if b, err = m.Encode(pgtype.TimestamptzOID, pgtype.BinaryFormatCode, now, b); err != nil {
		return nil, err
	}
	ends[7] = len(b)
	b = appendUUIDArray(b, c.ids)
	ends[8] = len(b)
	c.params = b
	vals, start := c.vals[:0], 0
	for _, end := range ends {
		vals = append(vals, b[start:end:end])
		start = end
	}
	c.vals = vals
	return vals, nil
}

// appendArrayHeader appends the header of a one-dimensional array of n
// elements of type oid, without NULLs, in PostgreSQL's binary format.
func appendArrayHeader(b []byte, oid uint32, n int) []byte {
	b = binary.BigEndian.AppendUint32(b, 1) // dimensions
	b = binary.BigEndian.AppendUint32(b, 0) // no NULLs
	b = binary.BigEndian.AppendUint32(b, oid)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return binary.BigEndian.AppendUint32(b, 1) // lower bound
}

func appendInt8Array(b []byte, a []int64) []byte {
	b = appendArrayHeader(b, pgtype.Int8OID, len(a))
	for _, v := range a {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func appendTextArray(b []byte, a []string) []byte {
	b = appendArrayHeader(b, pgtype.TextOID, len(a))
	for _, s := range a {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func appendUUIDArray(b []byte, a [][16]byte) []byte {
	b = appendArrayHeader(b, pgtype.UUIDOID, len(a))
	for _, id := range a {
		b = binary.BigEndian.AppendUint32(b, 16)
		b = append(b, id[:]...)
	}
	return b
}
