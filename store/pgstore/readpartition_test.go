package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// unknownEvent is registered only with the writer in
// TestReadPartitionSkipsOtherPayloads, so the reader cannot decode it.
type unknownEvent struct {
	N int `json:"n"`
}

func (unknownEvent) EventType() string { return "pgstore_test.unknown" }

// readAll reads the whole log with read, stepping past undecodable records,
// and returns the records and the positions it could not decode.
func readAll(t *testing.T, head event.Position, read func(after event.Position, dst []event.Record) ([]event.Record, error)) ([]event.Record, []event.Position) {
	t.Helper()
	var (
		out []event.Record
		bad []event.Position
		pos event.Position
	)
	for {
		recs, err := read(pos, make([]event.Record, 0, 37))
		out = append(out, recs...)
		if len(recs) > 0 {
			pos = recs[len(recs)-1].Position
		}
		var re *store.RecordError
		switch {
		case errors.As(err, &re):
			bad = append(bad, re.Position)
			pos = re.Position
		case err != nil:
			t.Fatal(err)
		case len(recs) == 0 && pos >= head:
			return out, bad
		case len(recs) == 0:
			time.Sleep(10 * time.Millisecond) // held back by another transaction
		}
	}
}

// TestReadPartitionSkipsOtherPayloads: ReadPartition returns every record
// Read does, in the same order and with the same position, stream and
// version; the records of the partition are decoded exactly as by Read,
// those of the others have no payload; and a record no one can decode is
// an error only for the partition its stream belongs to.
func TestReadPartitionSkipsOtherPayloads(t *testing.T) {
	pool := newPool(t, 4)
	st := newStore(t, pool)
	ctx := context.Background()
	wreg := testRegistry(t)
	require.NoError(t, event.Register[unknownEvent](wreg))
	writer, err := pgstore.New(ctx, pool, wreg, pgstore.WithSchema(st.Schema()))
	require.NoError(t, err)
	defer writer.Close()
	for i := range 300 {
		_, err := writer.Update(ctx, func(tx store.Tx) error {
			s := fmt.Sprintf("s-%d", i%29)
			if i%50 == 7 {
				tx.Record(s, unknownEvent{N: i})
			} else {
				tx.Record(s, Incremented{Key: s, N: i})
			}
			return nil
		})
		require.NoError(t, err)
	}
	head, err := committedHead(ctx, st)
	require.NoError(t, err)
	all, bad := readAll(t, head, func(after event.Position, dst []event.Record) ([]event.Record, error) {
		return st.Read(ctx, after, dst)
	})
	require.Len(t, bad, 6)
	require.Equal(t, 294, len(all))
	const n = 4
	for i := range n {
		part := projection.Partition{Index: i, Count: n, Name: projection.PartitionName("p", i, n)}
		got, gotBad := readAll(t, head, func(after event.Position, dst []event.Record) ([]event.Record, error) {
			return st.ReadPartition(ctx, after, dst, part)
		})
		var wantBad []event.Position
		for _, p := range bad {
			var rec []event.Record
			rec, err := writer.Read(ctx, p-1, make([]event.Record, 0, 1))
			require.NoError(t, err)
			if projection.PartitionOf(rec[0].Stream, n) == i {
				wantBad = append(wantBad, p)
			}
		}
		require.Equal(t, wantBad, gotBad, "partition %d: undecodable records reported", i)
		j := 0
		for _, rec := range got {
			if projection.PartitionOf(rec.Stream, n) != i {
				require.Nil(t, rec.Data, "partition %d: another partition's payload decoded", i)
				require.Zero(t, rec.Metadata)
				require.NotZero(t, rec.Position)
				require.NotEmpty(t, rec.Stream)
				continue
			}
			// Its own records: as Read returns them, in the same order.
			for j < len(all) && all[j].Position < rec.Position {
				j++
			}
			require.Less(t, j, len(all))
			require.Equal(t, all[j], rec, "partition %d", i)
		}
		// Every readable record and every other partition's record is there.
		seen := map[event.Position]event.Record{}
		for _, rec := range got {
			seen[rec.Position] = rec
		}
		for _, rec := range all {
			s, ok := seen[rec.Position]
			require.True(t, ok, "partition %d: position %d missing", i, rec.Position)
			require.Equal(t, rec.Stream, s.Stream)
			require.Equal(t, rec.Version, s.Version)
			require.Equal(t, rec.ID, s.ID)
		}
		require.Len(t, got, len(all)+len(bad)-len(wantBad), "partition %d: records returned", i)
	}
}
