package readmodel_test

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/store"
)

// A product view as a projection maintains it: each field answers part of
// the product page query without a JOIN.
type productView struct {
	Name    string
	Rating  readmodel.RunningAverage
	Reviews readmodel.Recent[string]
}

func ExampleMap() {
	ctx := context.Background()
	products := readmodel.NewMap[string, productView]()

	// A projection stores the view when the product is created...
	_ = products.Put(ctx, "p1", productView{Name: "Espresso machine", Reviews: readmodel.NewRecent[string](5)})

	// ...and queries read it: Load on the hot path, Get through the Store
	// interface.
	if v, ok := products.Load("p1"); ok {
		fmt.Println(v.Name)
	}
	_, err := products.Get(ctx, "p2")
	fmt.Println(errors.Is(err, store.ErrNotFound))
	// Output:
	// Espresso machine
	// true
}

func ExampleMap_Update() {
	products := readmodel.NewMap[string, productView]()
	products.Update("p1", func(productView, bool) (productView, bool) {
		return productView{Name: "Grinder", Reviews: readmodel.NewRecent[string](5)}, true
	})

	// On ReviewPosted: a read-modify-write that concurrent updates of the
	// same product cannot interleave with. The old view is not modified:
	// Add and Push return new values, so readers holding it are unaffected.
	reviewPosted := func(product, text string, stars float64) {
		products.Update(product, func(v productView, ok bool) (productView, bool) {
			if !ok {
				return v, false // unknown product: store nothing
			}
			v.Rating = v.Rating.Add(stars)
			v.Reviews = v.Reviews.Push(text)
			return v, true
		})
	}
	reviewPosted("p1", "Great", 5)
	reviewPosted("p1", "Noisy", 3)
	reviewPosted("p9", "Who?", 1)

	v, _ := products.Load("p1")
	fmt.Println(v.Name, v.Rating.Count(), v.Rating.Mean(), v.Reviews.Items())
	_, ok := products.Load("p9")
	fmt.Println(ok)
	// Output:
	// Grinder 2 4 [Noisy Great]
	// false
}

func ExampleRunningAverage() {
	var rating readmodel.RunningAverage // the zero value is empty
	rating = rating.Add(4).Add(5).Add(4)
	fmt.Println(rating.Count(), rating.Sum(), rating.Round(2))

	// A review is edited from 5 to 3 stars.
	rating = rating.Remove(5).Add(3)
	fmt.Println(rating.Count(), rating.Mean())

	// Round goes half away from zero, and float error does not flip it.
	fmt.Println(readmodel.RunningAverage{}.Add(4).Add(4.5).Round(1))
	fmt.Println(readmodel.RunningAverage{}.Add(4.35).Round(1))
	// Output:
	// 3 13 4.33
	// 3 3.6666666666666665
	// 4.3
	// 4.4
}

func ExampleRecent() {
	latest := readmodel.NewRecent[string](3)
	for _, review := range []string{"first", "second", "third", "fourth"} {
		latest = latest.Push(review)
	}
	fmt.Println(latest.Items(), latest.Len(), latest.Cap())
	for r := range latest.All() {
		fmt.Println(r)
		break // newest first
	}
	// Output:
	// [fourth third second] 3 3
	// fourth
}

func ExampleRanking() {
	topRated := readmodel.NewRanking[string]()
	topRated.Set("grinder", 4.2)
	topRated.Set("kettle", 4.8)
	topRated.Set("espresso", 4.5)
	topRated.Set("scale", 4.5) // ties are broken by key
	topRated.Set("grinder", 4.9)

	// Reuse a buffer: Top then allocates nothing.
	buf := make([]readmodel.Ranked[string], 0, 3)
	for _, e := range topRated.Top(3, buf[:0]) {
		fmt.Println(e.Key, e.Score)
	}
	// Output:
	// grinder 4.9
	// kettle 4.8
	// espresso 4.5
}

func ExampleSortedSet() {
	inStock := readmodel.NewSortedSet[string]()
	for _, p := range []string{"p5", "p1", "p4", "p2", "p3"} {
		inStock.Add(p)
	}
	inStock.Remove("p4") // sold out

	// Page through with a cursor: the last key of each page.
	page := inStock.Page(2, nil)
	for len(page) > 0 {
		fmt.Println(page)
		page = inStock.PageAfter(page[len(page)-1], 2, page[:0])
	}
	// Output:
	// [p1 p2]
	// [p3 p5]
}

func ExampleIndex() {
	bySeller := readmodel.NewIndex[string, string]()
	bySeller.Add("acme", "p2")
	bySeller.Add("acme", "p1")
	bySeller.Add("globex", "p3")
	bySeller.Remove("globex", "p3") // the group disappears with its last key

	fmt.Println(bySeller.Keys("acme", nil), bySeller.Len("acme"), bySeller.GroupCount())
	// Output:
	// [p1 p2] 2 1
}

// Groups lists the groups themselves, here every seller with products,
// in no particular order: sort them for a stable listing.
func ExampleIndex_Groups() {
	bySeller := readmodel.NewIndex[string, string]()
	bySeller.Add("globex", "p3")
	bySeller.Add("acme", "p1")
	bySeller.Add("initech", "p4")
	bySeller.Add("acme", "p2")
	bySeller.Remove("initech", "p4") // an empty group is not listed

	for _, seller := range slices.Sorted(bySeller.Groups()) {
		fmt.Println(seller, bySeller.Keys(seller, nil))
	}
	// Output:
	// acme [p1 p2]
	// globex [p3]
}
