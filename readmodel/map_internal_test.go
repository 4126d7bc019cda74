package readmodel

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	require.Equal(t, n, live, "after inserts")
	require.Equal(t, live, used, "after inserts: no tombstones")
	require.LessOrEqual(t, used*4, slots*3, "after inserts: tables at most 3/4 full")
	probes := 0
	for i := range n {
		h := m.hash(key(i))
		tb := m.tables[h>>(64-shardBits)].Load()
		for j := tb.home(h); tb.entries[j].kv.Load().key != key(i); j = (j + 1) & tb.mask {
			probes++
		}
	}
	require.LessOrEqual(t, float64(probes)/n, 1.0, "extra probes per hit on average")

	// Deleting and re-inserting the same key revives its slot.
	m.remove(key(1))
	m.store(key(1), 1)
	_, used2, _ := m.tableStats()
	require.Equal(t, used, used2, "a re-insert must not claim a new slot")

	// Churn through new keys: tombstones are purged, tables do not grow
	// without bound.
	for i := n; i < 4*n; i++ {
		m.store(key(i), i)
		m.remove(key(i - n))
	}
	slots2, _, live := m.tableStats()
	require.Equal(t, n, live, "after churn")
	require.LessOrEqual(t, slots2, 2*slots, "after churn: tables must not grow without bound")

	// Deleting almost everything shrinks the tables.
	for i := 3 * n; i < 4*n-10; i++ {
		m.remove(key(i))
	}
	slots3, _, live := m.tableStats()
	require.Equal(t, 10, live, "after deletes")
	assert.LessOrEqual(t, slots3, shardCount*minTableSize*4, "after deletes: tables shrink")
	assert.Equal(t, 10, m.Len())
}

// TestMapReserve checks that after reserve(n) storing n keys rebuilds no
// table, and that reserve keeps what the Map holds.
func TestMapReserve(t *testing.T) {
	m := NewMap[int, int]()
	for i := range 10 {
		m.store(-1-i, i)
	}
	const n = 20000
	m.reserve(n)
	var before [shardCount]*table[int, int]
	for si := range m.tables {
		before[si] = m.tables[si].Load()
	}
	for i := range n {
		m.store(i, i)
	}
	for si := range m.tables {
		if m.tables[si].Load() != before[si] {
			t.Fatalf("shard %d rebuilt its table after reserve", si)
		}
	}
	if m.Len() != n+10 {
		t.Fatalf("Len %d, want %d", m.Len(), n+10)
	}
	for i := -10; i < n; i++ {
		v, ok := m.Load(i)
		want := i
		if i < 0 {
			want = -1 - i
		}
		if !ok || v != want {
			t.Fatalf("Load(%d) = %d, %v", i, v, ok)
		}
	}
}
