package event_test

import (
	"context"
	"fmt"

	"github.com/cqrskit/cqrs/event"
)

type PriceChanged struct {
	SKU      string
	NewCents int64
}

func (PriceChanged) EventType() string { return "shop.PriceChanged" }

func ExampleOn() {
	var r event.Router
	event.On(&r, func(_ context.Context, rec event.Record, e PriceChanged) error {
		fmt.Printf("%s now costs %d (position %v)\n", e.SKU, e.NewCents, rec.Position)
		return nil
	})
	_ = r.Handle(context.Background(), event.Record{Type: "shop.PriceChanged", Position: 7, Data: PriceChanged{"kettle", 4200}})
	// Output: kettle now costs 4200 (position 7)
}

func ExampleParsePosition() {
	token := event.Position(1234).String() // send it to the client
	p, err := event.ParsePosition(token)   // and read it back
	fmt.Println(p, err)
	// Output: 1234 <nil>
}

func ExampleRegistry() {
	reg := event.NewRegistry()
	_ = event.Register[PriceChanged](reg)
	data, _ := reg.Marshal(PriceChanged{SKU: "kettle", NewCents: 4200})
	e, _ := reg.Unmarshal("shop.PriceChanged", data)
	fmt.Printf("%s %#v\n", data, e)
	// Output: {"SKU":"kettle","NewCents":4200} event_test.PriceChanged{SKU:"kettle", NewCents:4200}
}
