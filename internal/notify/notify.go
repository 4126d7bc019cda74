// Package notify is the library's one wake-on-publish primitive: the memory
// log, the projection runner and the PostgreSQL watcher wake their waiters
// with it instead of polling.
package notify

import (
	"sync"
	"sync/atomic"
)

// Broadcast wakes every goroutine waiting on it when Publish is called. The
// zero value is ready to use. Publish costs one atomic load when nobody
// waits, so it can sit on a hot path.
type Broadcast struct {
	mu      sync.Mutex
	ch      chan struct{}
	waiting atomic.Bool
}

// Wait returns a channel that is closed by the next Publish. Take the channel
// before checking the condition you wait for, then select on it: a Publish
// that happens in between still wakes you.
func (b *Broadcast) Wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
		b.waiting.Store(true)
	}
	return b.ch
}

// Publish wakes every goroutine waiting on a channel from Wait.
func (b *Broadcast) Publish() {
	if !b.waiting.Load() {
		return
	}
	b.mu.Lock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
	b.waiting.Store(false)
	b.mu.Unlock()
}
