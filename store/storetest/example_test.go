package storetest_test

import (
	"fmt"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store/storetest"
)

// A durable store decodes payloads through a registry, so its harness
// registers the suite's event types in the registry it gives the store.
func ExampleRegister() {
	reg := event.NewRegistry()
	if err := storetest.Register(reg); err != nil {
		panic(err)
	}
	fmt.Println(reg.Types())
	// Output: [storetest.added storetest.renamed]
}
