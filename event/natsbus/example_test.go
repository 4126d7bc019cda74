package natsbus_test

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/event/natsbus"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// PriceChanged is the example's event.
type PriceChanged struct {
	SKU   string `json:"sku"`
	Cents int64  `json:"cents"`
}

func (PriceChanged) EventType() string { return "shop.price_changed" }

// prices is a read model: the latest price per SKU.
type prices struct {
	mu sync.Mutex
	m  map[string]int64
}

func (p *prices) Name() string { return "prices" }

func (p *prices) Handle(_ context.Context, rec event.Record) error {
	e := rec.Data.(PriceChanged)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[e.SKU] = e.Cents
	return nil
}

// A writer relays its log to JetStream; a reader follows the stream with
// an ordinary projection.Runner and waits for the writer's token.
func Example() {
	// A throw-away JetStream server for the example; in production both
	// sides connect to your NATS cluster.
	dir, _ := os.MkdirTemp("", "natsbus-example")
	defer os.RemoveAll(dir)
	srv, _ := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	go srv.Start()
	defer srv.Shutdown()
	srv.ReadyForConnections(5e9)
	nc, _ := nats.Connect(srv.ClientURL())
	defer nc.Close()
	js, _ := jetstream.New(nc)

	reg := event.NewRegistry()
	_ = event.Register[PriceChanged](reg)
	ctx := context.Background()

	// Writer process: the store and a relay from its log.
	st := store.NewMemory()
	relay := natsbus.NewRelay(js, st, reg, natsbus.WithStream("SHOP"), natsbus.WithSubjectPrefix("shop"))
	rctx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	go func() { _ = relay.Run(rctx) }()

	// Reader process: a Follower is the runner's log.
	follower := natsbus.NewFollower(js, reg, natsbus.WithStream("SHOP"), natsbus.WithSubjectPrefix("shop"))
	defer follower.Close()
	view := &prices{m: map[string]int64{}}
	runner := projection.NewRunner(follower)
	_ = runner.Add(view, projection.AsAsync())
	_ = runner.Start(ctx)
	defer runner.Close()

	// A write returns a position token...
	token, _ := st.Update(ctx, func(tx store.Tx) error {
		tx.Record("sku/A-1", PriceChanged{SKU: "A-1", Cents: 1999})
		tx.Record("sku/B-2", PriceChanged{SKU: "B-2", Cents: 450})
		return nil
	})
	// ...that means the same on the reader.
	if err := runner.WaitFor(ctx, "", token); err != nil {
		fmt.Println(err)
		return
	}
	view.mu.Lock()
	fmt.Println(view.m["A-1"], view.m["B-2"])
	view.mu.Unlock()
	fmt.Println(natsbus.Subject("shop", "sku/A-1", "shop.price_changed"))
	// Output:
	// 1999 450
	// shop.sku.shop.price_changed
}
