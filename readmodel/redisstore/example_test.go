package redisstore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/readmodel/redisstore"
	"github.com/cqrskit/cqrs/store"
	"github.com/redis/go-redis/v9"
)

// ItemAdded is an example event.
type ItemAdded struct {
	Cart, Item string
}

func (ItemAdded) EventType() string { return "example.ItemAdded" }

// A projector that counts items per cart in Redis, exactly once, and a
// query from any process. (Needs a Redis server, so it has no Output.)
func Example() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()

	ns, err := redisstore.NewNamespace(rdb, "shop", "cart-sizes")
	if err != nil {
		panic(err)
	}
	sizes := redisstore.NewStore[string, int](ns, "sizes")
	p := redisstore.NewProjector(ns, func(ctx context.Context, _ *redisstore.Tx, rec event.Record) error {
		e := rec.Data.(ItemAdded)
		n, err := sizes.Get(ctx, e.Cart) // sees the batch's own writes
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return sizes.Put(ctx, e.Cart, n+1) // buffered, committed with the checkpoint
	})
	defer p.Close()

	log := store.NewMemory()
	pos, _ := log.Update(ctx, func(tx store.Tx) error {
		tx.Record("cart/1", ItemAdded{Cart: "1", Item: "book"})
		tx.Record("cart/1", ItemAdded{Cart: "1", Item: "pen"})
		return nil
	})
	r := projection.NewRunner(log)
	defer r.Close()
	if err := r.Add(p, projection.AsAsync()); err != nil {
		panic(err)
	}
	if err := r.Start(ctx); err != nil {
		panic(err)
	}
	if err := r.WaitFor(ctx, "cart-sizes", pos); err != nil {
		panic(err)
	}

	n, _ := sizes.Get(ctx, "1") // one round trip, from any process
	fmt.Println("cart 1 holds", n, "items")
}
