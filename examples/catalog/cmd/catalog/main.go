// Command catalog runs the product-catalog demo on the embedded in-memory
// store: it seeds a catalog, dispatches commands (some rejected on purpose),
// and prints the read models, a read-your-writes round trip and a rebuild.
// Failures are printed as sentences (see demo.Describe).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/cqrskit/cqrs/examples/catalog/demo"
	"github.com/cqrskit/cqrs/store"
)

func main() {
	products := flag.Int("products", 1000, "catalog size to seed")
	flag.Parse()
	clk := demo.NewClock()
	st := store.NewMemory(store.WithClock(clk.Now))
	defer st.Close()
	if err := demo.Run(context.Background(), os.Stdout, st, st, clk, *products); err != nil {
		fmt.Fprintln(os.Stderr, "catalog:", demo.Describe(err))
		os.Exit(1)
	}
}
