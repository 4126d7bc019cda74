package projection

import (
	"context"
	"errors"
	"fmt"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// BatchFlusher is an optional capability of a SelfCheckpointer whose store
// is remote (Redis, SQL): writing every event on its own costs a network
// round trip per event, so its Handle may buffer the writes of the records
// it accepts, and the runner calls FlushBatch once at the end of every
// batch of records it delivered.
//
// FlushBatch must make the buffered writes durable together with pos as
// the projector's checkpoint, atomically, or write nothing and return an
// error. pos is the last record the runner is done with, applied or
// parked by the failure policy. The runner publishes the batch's position
// (WaitFor, Status, the next batch's start) only once FlushBatch returned
// nil, so a query that waited for a position sees the writes. When it
// fails, nothing of the batch counts as applied: the runner delivers the
// batch again (after an infrastructure pause), and the projector must
// have dropped what it had buffered. An error matching store.ErrConflict
// (the stored checkpoint is not the one the batch started from: another
// writer got there) stops the projector, like a refused checkpoint save.
type BatchFlusher interface {
	FlushBatch(ctx context.Context, pos event.Position) error
}

// flushBatch calls the projector's FlushBatch; a conflict stops the
// projector.
func (pj *proj) flushBatch(ctx context.Context, pos event.Position) error {
	fl := pj.p.(BatchFlusher)
	err := fl.FlushBatch(ctx, pos)
	if err != nil && errors.Is(err, store.ErrConflict) {
		return pj.halt(fmt.Errorf("batch not flushed: %w", err), pos)
	}
	return err
}
