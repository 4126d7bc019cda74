package catalog

import (
	"fmt"
	"math/rand/v2"
)

// Gen produces catalog commands from a seed, for tests, benchmarks and the
// demo: the same seed gives the same sequence. Product i is p-i, owned by
// seller s-(i mod Sellers).
type Gen struct {
	Sellers, Products int
	rng               *rand.Rand
	reviews           int
}

// NewGen returns a generator over a catalog of the given size.
func NewGen(seed uint64, sellers, products int) *Gen {
	return &Gen{Sellers: max(sellers, 1), Products: max(products, 1), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// SellerID returns the ID of seller i.
func SellerID(i int) string { return fmt.Sprintf("s-%d", i) }

// ProductID returns the ID of product i.
func ProductID(i int) string { return fmt.Sprintf("p-%d", i) }

// OwnerOf returns the seller of product i.
func (g *Gen) OwnerOf(i int) string { return SellerID(i % g.Sellers) }

var methods = []string{"standard", "express", "overnight", "pickup"}

// RegisterSeller returns the command that registers seller i.
func (g *Gen) RegisterSeller(i int) RegisterSeller {
	return RegisterSeller{SellerID: SellerID(i), Name: fmt.Sprintf("Seller %d", i), Rating: float64(30+g.rng.IntN(21)) / 10}
}

// ListProduct returns the command that lists product i.
func (g *Gen) ListProduct(i int) ListProduct {
	return ListProduct{
		ProductID: ProductID(i), SellerID: g.OwnerOf(i),
		Title:       fmt.Sprintf("Product %d", i),
		Description: "A fine product.",
		PriceCents:  int64(100 + g.rng.IntN(100_000)),
		Stock:       g.rng.IntN(20),
	}
}

// Review returns a valid review of product i.
func (g *Gen) Review(i int) SubmitReview {
	g.reviews++
	return SubmitReview{
		ReviewID: fmt.Sprintf("r-%d", g.reviews), ProductID: ProductID(i),
		Author: fmt.Sprintf("user-%d", g.rng.IntN(1000)), Rating: 1 + g.rng.IntN(5),
		Text: "Worked as described.",
	}
}

// Shipping returns a command that gives product i one to three options.
func (g *Gen) Shipping(i int) SetShipping {
	n := 1 + g.rng.IntN(3)
	opts := make([]ShippingOption, 0, n)
	for _, k := range g.rng.Perm(len(methods))[:n] {
		opts = append(opts, ShippingOption{Method: methods[k], PriceCents: int64(g.rng.IntN(2000)), Days: 1 + g.rng.IntN(7)})
	}
	return SetShipping{ProductID: ProductID(i), SellerID: g.OwnerOf(i), Options: opts}
}

// Seed returns the commands that build the catalog: every seller, every
// product with its shipping options, and reviewsPerProduct reviews each.
func (g *Gen) Seed(reviewsPerProduct int) []any {
	cmds := make([]any, 0, g.Sellers+g.Products*(2+reviewsPerProduct))
	for i := range g.Sellers {
		cmds = append(cmds, g.RegisterSeller(i))
	}
	for i := range g.Products {
		cmds = append(cmds, g.ListProduct(i), g.Shipping(i))
		for range reviewsPerProduct {
			cmds = append(cmds, g.Review(i))
		}
	}
	return cmds
}

// Next returns a random command over the catalog, from every command type.
// About one in eight is rejected by design: invalid fields or text (a NUL,
// invalid UTF-8), a product not listed yet, a seller acting on a product it
// does not own, a reservation of more than is in stock, or an outdated
// ExpectedVersion. Others are rejected or are no-ops by chance: a listing
// of a product that exists, a reservation when stock ran out, an
// ExpectedVersion that happens to be stale, a value set to what it was.
func (g *Gen) Next() any {
	i := g.rng.IntN(g.Products)
	owner := g.OwnerOf(i)
	if g.rng.IntN(8) == 0 { // a rejection of some kind
		switch g.rng.IntN(7) {
		case 0:
			r := g.Review(i)
			r.Rating = 6
			return r
		case 1:
			return UpdatePrice{ProductID: ProductID(i), SellerID: owner, PriceCents: -1}
		case 2:
			return UpdateStock{ProductID: ProductID(i), SellerID: SellerID((i + 1) % g.Sellers), Stock: 1}
		case 3:
			return ReserveStock{ProductID: ProductID(i), Quantity: MaxQuantity} // insufficient stock
		case 4:
			return UpdateDetails{ProductID: ProductID(i), SellerID: owner, Title: []string{"nul\x00", "bad \xff utf-8"}[g.rng.IntN(2)]}
		case 5:
			return UpdatePrice{ProductID: ProductID(i), SellerID: owner, PriceCents: 100, ExpectedVersion: 1 << 40} // stale
		default:
			return g.Review(g.Products + 1 + g.rng.IntN(10)) // no such product
		}
	}
	switch k := g.rng.IntN(100); {
	case k < 5:
		return g.ListProduct(i) // may already exist: rejected
	case k < 35:
		return g.Review(i)
	case k < 50:
		return UpdatePrice{ProductID: ProductID(i), SellerID: owner, PriceCents: int64(100 + g.rng.IntN(100_000))}
	case k < 58:
		c := UpdateStock{ProductID: ProductID(i), SellerID: owner, Stock: g.rng.IntN(5)}
		if g.rng.IntN(2) == 0 {
			c.ExpectedVersion = uint64(1 + g.rng.IntN(8)) // current or stale
		}
		return c
	case k < 68:
		return ReserveStock{ProductID: ProductID(i), Quantity: 1 + g.rng.IntN(3)}
	case k < 74:
		return Restock{ProductID: ProductID(i), SellerID: owner, Quantity: 1 + g.rng.IntN(10)}
	case k < 84:
		return UpdateDetails{ProductID: ProductID(i), SellerID: owner, Title: fmt.Sprintf("Product %d v%d", i, g.rng.IntN(4)), Description: "Updated."}
	case k < 92:
		return g.Shipping(i)
	case k < 96:
		s := g.rng.IntN(g.Sellers)
		return RenameSeller{SellerID: SellerID(s), Name: fmt.Sprintf("Seller %d (%d)", s, g.rng.IntN(4))}
	default:
		return RateSeller{SellerID: SellerID(g.rng.IntN(g.Sellers)), Rating: float64(g.rng.IntN(6))}
	}
}
