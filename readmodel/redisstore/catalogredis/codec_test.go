package catalogredis_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/readmodel/redisstore"
	"github.com/cqrskit/cqrs/readmodel/redisstore/catalogredis"
	"github.com/cqrskit/cqrs/store"
)

// randString draws strings the codec must carry byte for byte: empty,
// ASCII, multi-byte UTF-8, JSON-looking, NUL bytes, invalid UTF-8, long.
func randString(r *rand.Rand) string {
	switch r.IntN(8) {
	case 0:
		return ""
	case 1:
		return "p-" + fmt.Sprint(r.Uint64())
	case 2:
		return "Größe 42 – café ☕ 日本語 🚀🇩🇪"
	case 3:
		return `{"ID":"not json","\u0000":1}`
	case 4:
		return string([]byte{0, 1, 0xff, 0xfe, '{', 0x80})
	case 5:
		return strings.Repeat("ü", r.IntN(3000))
	default:
		b := make([]rune, r.IntN(40))
		for i := range b {
			b[i] = rune(r.IntN(0x10FFFF))
		}
		return string(b)
	}
}

func randInt(r *rand.Rand) int64 {
	switch r.IntN(5) {
	case 0:
		return 0
	case 1:
		return math.MaxInt64
	case 2:
		return math.MinInt64
	case 3:
		return int64(r.IntN(1000)) - 500
	default:
		return int64(r.Uint64())
	}
}

func randFloat(r *rand.Rand) float64 {
	switch r.IntN(6) {
	case 0:
		return 0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return math.Inf(1)
	case 3:
		return math.NaN()
	case 4:
		return math.MaxFloat64
	default:
		return r.NormFloat64() * 1e6
	}
}

var zones = []*time.Location{time.UTC, time.Local, time.FixedZone("", 3600), time.FixedZone("X", -(23*3600 + 59*60 + 59)), time.FixedZone("", 0)}

func randTime(r *rand.Rand) time.Time {
	switch r.IntN(4) {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(r.Int64N(1<<40)-1<<39, r.Int64N(1e9)).UTC()
	default:
		return time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
	}
}

// randView draws a product view, from empty to every field at its largest.
func randView(t testing.TB, r *rand.Rand) catalog.ProductView {
	if r.IntN(20) == 0 {
		return catalog.ProductView{}
	}
	p := catalog.ProductView{
		ID: randString(r), Title: randString(r), Description: randString(r),
		PriceCents: randInt(r), Stock: int(randInt(r)), InStock: r.IntN(2) == 0,
		SellerID: randString(r), SellerName: randString(r), SellerRating: randFloat(r),
		PriceDropped: r.IntN(2) == 0, PreviousPriceCents: randInt(r),
		Version: r.Uint64() >> r.IntN(64), UpdatedAt: randTime(r),
	}
	if n := r.Int64N(1 << 53); r.IntN(4) > 0 {
		avg, err := readmodel.AverageOf(n, float64(n)*float64(1+r.IntN(5))/float64(1+r.IntN(3)))
		if err != nil {
			t.Fatal(err)
		}
		p.Ratings = avg
	}
	if r.IntN(8) > 0 {
		p.Recent = readmodel.NewRecent[catalog.ReviewSummary](1 + r.IntN(catalog.RecentReviews+5))
		for range r.IntN(12) {
			p.Recent = p.Recent.Push(catalog.ReviewSummary{
				ReviewID: randString(r), Author: randString(r), Rating: int(randInt(r)),
				Text: randString(r), At: randTime(r),
			})
		}
	}
	if k := r.IntN(5); k > 0 {
		p.Shipping = make([]catalog.ShippingOption, k-1)
		for i := range p.Shipping {
			p.Shipping[i] = catalog.ShippingOption{Method: randString(r), PriceCents: randInt(r), Days: int(randInt(r))}
		}
	}
	if k := r.IntN(4); k > 0 {
		n := k - 1
		if k == 3 {
			n = 64
		}
		p.History = make([]catalog.PricePoint, n)
		for i := range p.History {
			p.History[i] = catalog.PricePoint{At: randTime(r), Cents: randInt(r)}
		}
	}
	return p
}

// sameTime: the same instant and zone offset, UTC stays UTC and local
// stays local (another zone becomes a fixed zone: a new *time.Location
// with the offset, so == cannot be used).
func sameTime(a, b time.Time) bool {
	_, ao := a.Zone()
	_, bo := b.Zone()
	return a.Equal(b) && ao == bo && (a.Location() == time.UTC) == (b.Location() == time.UTC) &&
		(a.Location() == time.Local) == (b.Location() == time.Local) && a.IsZero() == b.IsZero()
}

func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// diffView returns the first difference between two views, or "".
func diffView(a, b catalog.ProductView) string {
	switch {
	case a.ID != b.ID || a.Title != b.Title || a.Description != b.Description:
		return "ID/title/description"
	case a.PriceCents != b.PriceCents || a.Stock != b.Stock || a.InStock != b.InStock:
		return "price/stock"
	case a.Ratings.Count() != b.Ratings.Count() || !sameFloat(a.Ratings.Sum(), b.Ratings.Sum()):
		return "ratings"
	case a.Recent.Cap() != b.Recent.Cap() || a.Recent.Len() != b.Recent.Len():
		return "recent size"
	case a.SellerID != b.SellerID || a.SellerName != b.SellerName || !sameFloat(a.SellerRating, b.SellerRating):
		return "seller"
	case (a.Shipping == nil) != (b.Shipping == nil) || len(a.Shipping) != len(b.Shipping):
		return "shipping length"
	case (a.History == nil) != (b.History == nil) || len(a.History) != len(b.History):
		return "history length"
	case a.PriceDropped != b.PriceDropped || a.PreviousPriceCents != b.PreviousPriceCents || a.Version != b.Version:
		return "dropped/previous/version"
	case !sameTime(a.UpdatedAt, b.UpdatedAt):
		return fmt.Sprintf("UpdatedAt %v vs %v", a.UpdatedAt, b.UpdatedAt)
	}
	for i := range a.Recent.Len() {
		x, y := a.Recent.At(i), b.Recent.At(i)
		if x.ReviewID != y.ReviewID || x.Author != y.Author || x.Rating != y.Rating || x.Text != y.Text || !sameTime(x.At, y.At) {
			return fmt.Sprintf("review %d", i)
		}
	}
	for i := range a.Shipping {
		if a.Shipping[i] != b.Shipping[i] {
			return fmt.Sprintf("shipping %d", i)
		}
	}
	for i := range a.History {
		if a.History[i].Cents != b.History[i].Cents || !sameTime(a.History[i].At, b.History[i].At) {
			return fmt.Sprintf("history %d", i)
		}
	}
	return ""
}

func encode(t testing.TB, p catalog.ProductView) []byte {
	t.Helper()
	b, err := catalogredis.ProductCodec{}.Append(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// typed reports whether err is one of the codec's error types.
func typed(err error) bool {
	var ce *catalogredis.CorruptError
	var ue *catalogredis.UnknownFormatError
	return errors.As(err, &ce) || errors.As(err, &ue)
}

// TestProductCodecRoundTrip: random views, from empty to maximal fields,
// decode to exactly what was encoded; every proper prefix of an encoding
// and every encoding with a byte added is refused with a *CorruptError;
// and where JSON can encode the view (finite floats, valid UTF-8), the
// decoded view encodes to the same JSON as the original.
func TestProductCodecRoundTrip(t *testing.T) {
	c := catalogredis.ProductCodec{}
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 14))
		p := randView(t, r)
		b := encode(t, p)
		if b[0] != 1 {
			t.Fatalf("seed %d: format byte %d", seed, b[0])
		}
		got, err := c.Decode(string(b))
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if d := diffView(p, got); d != "" {
			t.Fatalf("seed %d: %s differs", seed, d)
		}
		if again := encode(t, got); !bytes.Equal(again, b) {
			t.Fatalf("seed %d: re-encoding differs", seed)
		}
		if want, err := json.Marshal(p); err == nil {
			if have, _ := json.Marshal(got); !bytes.Equal(have, want) {
				t.Fatalf("seed %d: JSON differs:\n%s\n%s", seed, have, want)
			}
		}
		for _, n := range prefixes(r, len(b)) {
			if _, err := c.Decode(string(b[:n])); !typed(err) {
				t.Fatalf("seed %d: prefix of %d/%d bytes: got %v, want a *CorruptError", seed, n, len(b), err)
			}
		}
		if _, err := c.Decode(string(append(b, 0))); !typed(err) {
			t.Fatalf("seed %d: trailing byte: got %v", seed, err)
		}
	}
}

// prefixes returns the lengths of proper prefixes to try: all of them for
// a short encoding, else the first and last 300 and 300 at random.
func prefixes(r *rand.Rand, n int) []int {
	var out []int
	for i := range n {
		if n <= 1000 || i < 300 || i >= n-300 {
			out = append(out, i)
		}
	}
	if n > 1000 {
		for range 300 {
			out = append(out, r.IntN(n))
		}
	}
	return out
}

// TestProductCodecFormats: a value in an unknown format is refused with an
// *UnknownFormatError naming the byte; the JSON older versions stored is
// still read, as JSON decoding reads it.
func TestProductCodecFormats(t *testing.T) {
	c := catalogredis.ProductCodec{}
	for _, f := range []byte{0, 2, 0x7f, 0xff} {
		var ue *catalogredis.UnknownFormatError
		if _, err := c.Decode(string([]byte{f, 0, 0})); !errors.As(err, &ue) || ue.Format != f {
			t.Fatalf("format %#x: got %v", f, err)
		}
	}
	var ce *catalogredis.CorruptError
	if _, err := c.Decode(""); !errors.As(err, &ce) {
		t.Fatalf("empty value: got %v", err)
	}
	for seed := range uint64(50) {
		p := randView(t, rand.New(rand.NewPCG(seed, 15)))
		old, err := json.Marshal(p)
		if err != nil {
			continue // not a view the JSON version could have stored
		}
		var want catalog.ProductView
		if err := json.Unmarshal(old, &want); err != nil {
			t.Fatal(err)
		}
		got, err := c.Decode(string(old))
		if err != nil {
			t.Fatalf("seed %d: old JSON view: %v", seed, err)
		}
		if d := diffView(want, got); d != "" {
			t.Fatalf("seed %d: old JSON view: %s differs", seed, d)
		}
	}
	if _, err := c.Decode(`{"ID":`); err == nil {
		t.Fatal("truncated JSON decoded")
	}
}

func TestSellerCodec(t *testing.T) {
	c := catalogredis.SellerCodec{}
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 16))
		s := catalog.SellerView{ID: randString(r), Name: randString(r), Rating: randFloat(r)}
		b, err := c.Append(nil, s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decode(string(b))
		if err != nil || got.ID != s.ID || got.Name != s.Name || !sameFloat(got.Rating, s.Rating) {
			t.Fatalf("seed %d: got %+v, %v; want %+v", seed, got, err, s)
		}
		for n := range len(b) {
			if _, err := c.Decode(string(b[:n])); !typed(err) {
				t.Fatalf("seed %d: prefix %d: %v", seed, n, err)
			}
		}
		if old, err := json.Marshal(s); err == nil {
			var want catalog.SellerView
			if err := json.Unmarshal(old, &want); err != nil {
				t.Fatal(err)
			}
			if got, err := c.Decode(string(old)); err != nil || got != want {
				t.Fatalf("seed %d: old JSON view: %+v, %v; want %+v", seed, got, err, want)
			}
		}
	}
}

// FuzzProductCodec: any input either decodes to a view that encodes and
// decodes back to itself, or is refused with the codec's typed errors
// (input starting with '{' goes to the JSON decoder and only must not
// panic).
func FuzzProductCodec(f *testing.F) {
	// Small seeds only: the fuzzer mutates and minimizes slowly on large
	// ones.
	for seed := range uint64(200) {
		if b := encode(f, randView(f, rand.New(rand.NewPCG(seed, 17)))); len(b) < 600 {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte(`{"ID":"x"}`))
	c := catalogredis.ProductCodec{}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := c.Decode(string(data))
		if len(data) > 0 && data[0] == '{' {
			return
		}
		if err != nil {
			if !typed(err) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		b := encode(t, p)
		q, err := c.Decode(string(b))
		if err != nil {
			t.Fatalf("re-encoded view does not decode: %v", err)
		}
		if d := diffView(p, q); d != "" {
			t.Fatalf("re-encoded view: %s differs", d)
		}
	})
}

// TestStoredFormats: a product view stored as JSON by an earlier version
// is read, and the projector's next change to it reads the JSON and
// writes format 1; a stored value in an unknown format is refused with an
// error matching store.ErrInvalid that carries the *UnknownFormatError.
func TestStoredFormats(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	pre := prefix(t, c)
	rv, err := catalogredis.New(c, pre)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := redisstore.NewNamespace(c, pre, catalogredis.Name)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	old := catalog.ProductView{
		ID: "p-1", Title: "Größe ☕", PriceCents: 1200, Stock: 3, InStock: true,
		Recent:   readmodel.NewRecent[catalog.ReviewSummary](catalog.RecentReviews).Push(catalog.ReviewSummary{ReviewID: "r-1", Author: "ann", Rating: 4, Text: "ok", At: at}),
		SellerID: "s-1", SellerName: "Sel", SellerRating: 4.5,
		Shipping: []catalog.ShippingOption{{Method: "post", PriceCents: 300, Days: 2}},
		History:  []catalog.PricePoint{{At: at, Cents: 1200}}, Version: 1, UpdatedAt: at,
	}
	if err := redisstore.NewStore[string, catalog.ProductView](ns, "products").Put(ctx, "p-1", old); err != nil {
		t.Fatal(err)
	}
	key := pre + ":" + catalogredis.Name + ":g1:s:products"
	if raw, err := c.HGet(ctx, key, "p-1").Result(); err != nil || raw[0] != '{' {
		t.Fatalf("the old view is not stored as JSON: %.20q, %v", raw, err)
	}
	got, ok, err := rv.Product(ctx, "p-1")
	if err != nil || !ok {
		t.Fatalf("old JSON view: %v, %v", ok, err)
	}
	equalJSON(t, "old JSON view", got, old)

	later := at.Add(time.Hour)
	p := rv.Projector()
	e := catalog.PriceChanged{ProductID: "p-1", OldCents: 1200, NewCents: 999}
	rec := event.Record{Type: e.EventType(), Stream: "product/p-1", Version: 2, Position: 1, Time: later, Data: e}
	if err := p.Handle(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := p.FlushBatch(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if raw, err := c.HGet(ctx, key, "p-1").Result(); err != nil || raw[0] != 1 {
		t.Fatalf("the changed view is not stored in format 1: %.20q, %v", raw, err)
	}
	want := old
	want.PriceCents, want.PreviousPriceCents, want.PriceDropped = 999, 1200, true
	want.History = append(want.History, catalog.PricePoint{At: later, Cents: 999})
	want.Version, want.UpdatedAt = 2, later
	got, ok, err = rv.Product(ctx, "p-1")
	if err != nil || !ok {
		t.Fatalf("changed view: %v, %v", ok, err)
	}
	equalJSON(t, "changed view", got, want)

	if err := c.HSet(ctx, key, "p-2", "\x07future").Err(); err != nil {
		t.Fatal(err)
	}
	_, _, err = rv.Product(ctx, "p-2")
	var ue *catalogredis.UnknownFormatError
	if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &ue) || ue.Format != 7 {
		t.Fatalf("unknown format: got %v", err)
	}
	if err := c.HSet(ctx, key, "p-3", "\x01\x05abc").Err(); err != nil {
		t.Fatal(err)
	}
	_, _, err = rv.Product(ctx, "p-3")
	var ce *catalogredis.CorruptError
	if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &ce) {
		t.Fatalf("truncated view: got %v", err)
	}
}

// benchView is a product view as the catalog seeds them: five reviews,
// three shipping options, ten price points.
func benchView() catalog.ProductView {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := catalog.ProductView{
		ID: "p-000123", Title: "Stainless steel kettle 1.7 l", Description: strings.Repeat("A kettle that boils water quickly. ", 6),
		PriceCents: 4999, Stock: 17, InStock: true, SellerID: "s-0042", SellerName: "Kitchen Things Ltd", SellerRating: 4.6,
		Recent:  readmodel.NewRecent[catalog.ReviewSummary](catalog.RecentReviews),
		Version: 31, UpdatedAt: at, PreviousPriceCents: 5299, PriceDropped: true,
	}
	for i := range 7 {
		p.Ratings = p.Ratings.Add(float64(1 + i%5))
		p.Recent = p.Recent.Push(catalog.ReviewSummary{ReviewID: fmt.Sprint("r-", i), Author: "author " + fmt.Sprint(i), Rating: 1 + i%5, Text: "Works as described, would buy again.", At: at.Add(time.Duration(i) * time.Hour)})
	}
	p.Shipping = []catalog.ShippingOption{{Method: "standard", PriceCents: 499, Days: 5}, {Method: "express", PriceCents: 999, Days: 2}, {Method: "pickup", Days: 1}}
	for i := range 10 {
		p.History = append(p.History, catalog.PricePoint{At: at.Add(time.Duration(i) * 24 * time.Hour), Cents: int64(5000 + i)})
	}
	return p
}

// BenchmarkProductCodec: decoding and encoding one product view, the
// binary format against the JSON it replaces.
func BenchmarkProductCodec(b *testing.B) {
	p := benchView()
	bin := string(encode(b, p))
	js, err := json.Marshal(p)
	if err != nil {
		b.Fatal(err)
	}
	c := catalogredis.ProductCodec{}
	b.Run("decode/format=binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Decode(bin); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(bin)), "bytes")
	})
	b.Run("decode/format=json", func(b *testing.B) {
		b.ReportAllocs()
		s := string(js)
		for b.Loop() {
			if _, err := c.Decode(s); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(js)), "bytes")
	})
	b.Run("encode/format=binary", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf, _ = c.Append(buf[:0], p)
		}
	})
	b.Run("encode/format=json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
