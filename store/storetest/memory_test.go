package storetest_test

import (
	"testing"

	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		m := store.NewMemory()
		return storetest.Harness{Store: m, Log: m, Close: m.Close}
	})
}
