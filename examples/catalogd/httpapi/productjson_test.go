package httpapi_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
)

// pieces are the fragments random strings are made of: everything
// encoding/json treats specially (quotes, backslash, control characters,
// HTML characters, U+2028/9, invalid UTF-8, DEL) next to plain text.
var pieces = []string{
	"a", "Zz", "hello world", "0", " ", `"`, `\`, "/", "<", ">", "&", "<script>",
	"\x00", "\x01", "\x08", "\x0c", "\n", "\r", "\t", "\x1f", "\x7f",
	"é", "ß", "日本", "😀", "\u2028", "\u2029", "\u2027", "\u202a", "\ufffd", "\ufeff",
	"\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf",
}

func randString(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(8) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// randFloat covers both sides of encoding/json's exponent cutoffs (1e-6
// and 1e21), negative zero, ratings as the catalog rounds them, and
// arbitrary bit patterns.
func randFloat(r *rand.Rand) float64 {
	switch r.IntN(7) {
	case 0:
		return 0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return math.Round(r.Float64()*50) / 10
	case 3:
		return (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(60)-30))
	case 4:
		return []float64{1e-6, 1e-7, 9.999999e-7, 1e21, 1e20, 999999999999999999999.0, 1e-300, 5e-324, math.MaxFloat64}[r.IntN(9)]
	default:
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 1.5
		}
		return f
	}
}

func randTime(r *rand.Rand) time.Time {
	// Years 0 to 9999, what RFC 3339 can represent.
	lo := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).Unix()
	t := time.Unix(lo+r.Int64N(hi-lo), 0)
	switch r.IntN(3) {
	case 0:
		t = t.Add(time.Duration(r.IntN(1e9)))
	case 1:
		t = t.Add(time.Duration(r.IntN(1000)) * time.Millisecond)
	}
	zones := []*time.Location{time.UTC, time.FixedZone("X", 5*3600+30*60), time.FixedZone("Y", -8*3600), time.FixedZone("S", 3600+17)}
	return t.In(zones[r.IntN(len(zones))])
}

func randInt64(r *rand.Rand) int64 {
	if r.IntN(4) == 0 {
		return 0
	}
	return int64(r.Uint64()) >> r.IntN(64)
}

func randProduct(r *rand.Rand) httpapi.ProductJSON {
	p := httpapi.ProductJSON{
		ID: randString(r), Title: randString(r), Description: randString(r),
		PriceCents: randInt64(r), Stock: int(randInt64(r)), InStock: r.IntN(2) == 0,
		AverageRating: randFloat(r), ReviewCount: int(randInt64(r)),
		Seller:       httpapi.SellerJSON{ID: randString(r), Name: randString(r), Rating: randFloat(r)},
		PriceDropped: r.IntN(2) == 0, PreviousPriceCents: randInt64(r), Trending: r.IntN(2) == 0,
		Version: r.Uint64() >> r.IntN(64), UpdatedAt: randTime(r),
	}
	if r.IntN(5) > 0 { // nil slices encode as null
		p.RecentReviews = []httpapi.ReviewJSON{}
		for range r.IntN(6) {
			p.RecentReviews = append(p.RecentReviews, httpapi.ReviewJSON{ReviewID: randString(r), Author: randString(r), Rating: int(randInt64(r)), Text: randString(r), At: randTime(r)})
		}
	}
	if r.IntN(5) > 0 {
		p.Shipping = []httpapi.ShippingJSON{}
		for range r.IntN(4) {
			p.Shipping = append(p.Shipping, httpapi.ShippingJSON{Method: randString(r), PriceCents: randInt64(r), Days: int(randInt64(r))})
		}
	}
	if r.IntN(2) == 0 {
		v := randInt64(r)
		p.Price30DaysAgoCents = &v
	}
	if r.IntN(2) == 0 {
		v := randInt64(r)
		p.Price90DaysAgoCents = &v
	}
	return p
}

// TestAppendJSONEqualsEncodingJSON: on random product views, the
// hand-written encoding is byte for byte encoding/json's.
func TestAppendJSONEqualsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 14))
	prefix := []byte("prefix")
	for i := range 20000 {
		p := randProduct(r)
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("view %d: encoding/json: %v", i, err)
		}
		got, err := p.AppendJSON(bytes.Clone(prefix))
		if err != nil {
			t.Fatalf("view %d: AppendJSON: %v", i, err)
		}
		if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
			t.Fatalf("view %d:\n got %q\nwant %q", i, got, want)
		}
	}
}

// TestAppendJSONRefusesWhatEncodingJSONRefuses: a NaN or infinite float
// and a year outside 0-9999 fail both encoders, and AppendJSON leaves dst
// as it was.
func TestAppendJSONRefusesWhatEncodingJSONRefuses(t *testing.T) {
	ok := func() httpapi.ProductJSON {
		return httpapi.ProductJSON{ID: "p", RecentReviews: []httpapi.ReviewJSON{{At: time.Unix(0, 0).UTC()}}, UpdatedAt: time.Unix(0, 0).UTC()}
	}
	cases := map[string]func(p *httpapi.ProductJSON){
		"NaN rating":        func(p *httpapi.ProductJSON) { p.AverageRating = math.NaN() },
		"+Inf seller":       func(p *httpapi.ProductJSON) { p.Seller.Rating = math.Inf(1) },
		"-Inf rating":       func(p *httpapi.ProductJSON) { p.AverageRating = math.Inf(-1) },
		"year 10000":        func(p *httpapi.ProductJSON) { p.UpdatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"year -1 in review": func(p *httpapi.ProductJSON) { p.RecentReviews[0].At = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) },
	}
	if _, err := ok().AppendJSON(nil); err != nil {
		t.Fatalf("the valid view fails: %v", err)
	}
	for name, mutate := range cases {
		p := ok()
		mutate(&p)
		if _, err := json.Marshal(p); err == nil {
			t.Errorf("%s: encoding/json accepts it", name)
		}
		got, err := p.AppendJSON([]byte("keep"))
		if err == nil || string(got) != "keep" {
			t.Errorf("%s: AppendJSON = %q, %v; want an error and dst unchanged", name, got, err)
		}
	}
}

// FuzzAppendJSON compares the two encoders on fuzzed text and numbers.
func FuzzAppendJSON(f *testing.F) {
	f.Add("p-1", "<b>&\"x\"</b>\n", "\xff\u2028", 4.5, int64(-3), int64(1700000000))
	f.Add("", "\x00\x7f", "日本😀", 1e-7, int64(0), int64(-62135596800))
	f.Fuzz(func(t *testing.T, id, title, text string, rating float64, cents, unix int64) {
		if math.IsNaN(rating) || math.IsInf(rating, 0) {
			rating = 0
		}
		at := time.Unix(unix%253402300799, int64(cents)%1e9).UTC()
		if at.Year() < 0 || at.Year() > 9999 {
			at = time.Unix(0, 0).UTC()
		}
		p := httpapi.ProductJSON{ID: id, Title: title, Description: text, PriceCents: cents, AverageRating: rating,
			RecentReviews: []httpapi.ReviewJSON{{ReviewID: id, Text: text, At: at}}, Seller: httpapi.SellerJSON{Name: title, Rating: -rating},
			Price30DaysAgoCents: &cents, PreviousPriceCents: cents, UpdatedAt: at}
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.AppendJSON(nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %q, %v\nwant %q", got, err, want)
		}
	})
}
