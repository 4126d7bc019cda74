package store_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

type Deposited struct {
	Account string
	Cents   int64
}

func (Deposited) EventType() string { return "bank.Deposited" }

func ExampleMemory_Update() {
	st := store.NewMemory()
	defer st.Close()
	balances := store.NewTable[string, int64](st, "balances")
	ctx := context.Background()

	deposit := func(acct string, cents int64) (event.Position, error) {
		return st.Update(ctx, func(tx store.Tx) error {
			bal, ver, err := balances.Get(tx, acct)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if cents <= 0 {
				return errors.New("deposit must be positive")
			}
			if _, err := balances.PutIf(tx, acct, bal+cents, ver); err != nil {
				return err
			}
			tx.Record("account/"+acct, Deposited{Account: acct, Cents: cents})
			return nil
		})
	}
	pos, err := deposit("a-1", 500)
	fmt.Println(pos, err)
	_, err = deposit("a-1", -5) // rejected: no row change, no event
	fmt.Println(err)

	recs, _ := st.Read(ctx, 0, make([]event.Record, 0, 10))
	for _, r := range recs {
		fmt.Println(r.Position, r.Stream, r.Version, r.Data)
	}
	// Output:
	// 1 <nil>
	// deposit must be positive
	// 1 account/a-1 1 {a-1 500}
}
