package readmodel

import (
	"strconv"
	"testing"
)

// tableStats reports the total slots and claimed slots over all shards.
func (m *Map[K, V]) tableStats() (slots, used, live int) {
	for si := range m.tables {
		if t := m.tables[si].Load(); t != nil {
			slots += len(t.entries)
			for i := range t.entries {
				switch h := t.entries[i].hash.Load(); {
				case h == 0:
				case h&1 == 1:
					used++
					live++
				default:
					used++
				}
			}
		}
	}
	return slots, used, live
}

func TestMapTablesStayBounded(t *testing.T) {
	m := NewMap[string, int]()
	key := func(i int) string { return "k" + strconv.Itoa(i) }

	const n = 20_000

	// Growth keeps tables at most 3/4 full and probes short.
	for i := range n {
		m.store(key(i), i)
	}
	slots, used, live := m.tableStats()
	if live != n || used != live || used*4 > slots*3 {
		t.Fatalf("after inserts: slots %d used %d live %d", slots, used, live)
	}
	probes := 0
	for i := range n {
		h := m.hash(key(i))
		tb := m.tables[h>>(64-shardBits)].Load()
		for j := tb.home(h); tb.entries[j].kv.Load().key != key(i); j = (j + 1) & tb.mask {
			probes++
		}
	}
	if avg := float64(probes) / n; avg > 1 {
		t.Fatalf("%.2f extra probes per hit on average", avg)
	}

	// Deleting and re-inserting the same key revives its slot.
	m.remove(key(1))
	m.store(key(1), 1)
	if _, used2, _ := m.tableStats(); used2 != used {
		t.Fatalf("re-insert claimed a new slot: used %d, was %d", used2, used)
	}

	// Churn through new keys: tombstones are purged, tables do not grow
	// without bound.
	for i := n; i < 4*n; i++ {
		m.store(key(i), i)
		m.remove(key(i - n))
	}
	if slots2, _, live := m.tableStats(); live != n || slots2 > 2*slots {
		t.Fatalf("after churn: slots %d (was %d), live %d", slots2, slots, live)
	}

	// Deleting almost everything shrinks the tables.
	for i := 3 * n; i < 4*n-10; i++ {
		m.remove(key(i))
	}
	if slots3, _, live := m.tableStats(); live != 10 || slots3 > shardCount*minTableSize*4 {
		t.Fatalf("after deletes: slots %d, live %d", slots3, live)
	}
	if m.Len() != 10 {
		t.Fatalf("Len = %d", m.Len())
	}
}
