package notify_test

import (
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/internal/notify"
)

func TestPublishWakesEveryWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b notify.Broadcast
		woken := make(chan int, 3)
		for i := range 3 {
			ch := b.Wait()
			go func() { <-ch; woken <- i }()
		}
		synctest.Wait()
		require.Empty(t, woken, "nobody wakes before Publish")
		b.Publish()
		synctest.Wait()
		require.Len(t, woken, 3)
	})
}

func TestWaitAfterPublishWaitsForTheNextOne(t *testing.T) {
	var b notify.Broadcast
	b.Publish() // nobody waits: a no-op
	ch := b.Wait()
	select {
	case <-ch:
		t.Fatal("a channel taken after Publish must not be closed by it")
	default:
	}
	b.Publish()
	<-ch
}
