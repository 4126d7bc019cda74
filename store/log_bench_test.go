package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// BenchmarkLogRead reads a 100K-event memory log in batches of 256, as a
// projection runner does; one op is one batch (ns/record is per record).
func BenchmarkLogRead(b *testing.B) {
	ctx := context.Background()
	st := store.NewMemory()
	defer st.Close()
	const n = 100_000
	for i := 0; i < n; i += 4 {
		if _, err := st.Update(ctx, func(tx store.Tx) error {
			for j := range 4 {
				tx.Record(fmt.Sprint("s/", (i+j)%1000), added{i + j})
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]event.Record, 0, 256)
	var after event.Position
	b.ReportAllocs()
	for b.Loop() {
		if after >= n {
			after = 0
		}
		recs, err := st.Read(ctx, after, buf[:0])
		if err != nil || len(recs) == 0 {
			b.Fatal(err, len(recs))
		}
		after = recs[len(recs)-1].Position
		clear(recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/256, "ns/record")
}
