package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// Seller is a row of the sellers table.
type Seller struct {
	ID     string
	Name   string
	Rating float64
}

// Product is a row of the products table.
type Product struct {
	ID          string
	SellerID    string
	Title       string
	Description string
	PriceCents  int64
	Stock       int
	// PriceSeq numbers the product's price_history rows.
	PriceSeq int
}

// Review is a row of the reviews table.
type Review struct {
	ID        string
	ProductID string
	Author    string
	Rating    int
	Text      string
}

// PriceKey keys the price_history table: one row per price a product had.
type PriceKey struct {
	ProductID string
	Seq       int
}

// PriceRow is a row of the price_history table. The time a price took
// effect is its event's commit time, which the store assigns, so the row
// keeps the order (PriceKey.Seq) and the amount.
type PriceRow struct {
	Cents int64
}

// Domain is the catalog's write model: normalized tables and the command
// handlers that validate against them. It knows nothing about read models.
type Domain struct {
	Sellers  *store.Table[string, Seller]
	Products *store.Table[string, Product]
	Reviews  *store.Table[string, Review]
	Shipping *store.Table[string, []ShippingOption]
	Prices   *store.Table[PriceKey, PriceRow]
}

// NewDomain declares the catalog's tables in st.
func NewDomain(st store.Store) *Domain {
	return &Domain{
		Sellers:  store.NewTable[string, Seller](st, "sellers"),
		Products: store.NewTable[string, Product](st, "products"),
		Reviews:  store.NewTable[string, Review](st, "reviews"),
		Shipping: store.NewTable[string, []ShippingOption](st, "shipping_options"),
		Prices:   store.NewTable[PriceKey, PriceRow](st, "price_history"),
	}
}

// Register installs the catalog's command handlers on b.
func (d *Domain) Register(b *command.Bus) {
	command.Register(b, d.registerSeller)
	command.Register(b, d.renameSeller)
	command.Register(b, d.rateSeller)
	command.Register(b, d.listProduct)
	command.Register(b, d.updatePrice)
	command.Register(b, d.updateStock)
	command.Register(b, d.reserveStock)
	command.Register(b, d.restock)
	command.Register(b, d.updateDetails)
	command.Register(b, d.submitReview)
	command.Register(b, d.setShipping)
}

func (d *Domain) seller(tx store.Tx, id string) (Seller, uint64, error) {
	s, ver, err := d.Sellers.Get(tx, id)
	if errors.Is(err, store.ErrNotFound) {
		return s, 0, store.NotFound("seller", id)
	}
	return s, ver, err
}

func (d *Domain) product(tx store.Tx, id string) (Product, uint64, error) {
	p, ver, err := d.Products.Get(tx, id)
	if errors.Is(err, store.ErrNotFound) {
		return p, 0, store.NotFound("product", id)
	}
	return p, ver, err
}

// ownedProduct loads a product and checks that seller owns it.
func (d *Domain) ownedProduct(tx store.Tx, id, seller string) (Product, uint64, error) {
	p, ver, err := d.product(tx, id)
	if err != nil {
		return p, 0, err
	}
	if p.SellerID != seller {
		return p, 0, command.Forbidden("seller " + seller + " does not own product " + id)
	}
	return p, ver, nil
}

func (d *Domain) registerSeller(_ context.Context, tx store.Tx, c RegisterSeller) error {
	if err := d.Sellers.Insert(tx, c.SellerID, Seller{ID: c.SellerID, Name: c.Name, Rating: c.Rating}); err != nil {
		return err
	}
	store.RecordIn(tx, sellerPrefix, c.SellerID, SellerRegistered{SellerID: c.SellerID, Name: c.Name, Rating: c.Rating})
	return nil
}

func (d *Domain) renameSeller(_ context.Context, tx store.Tx, c RenameSeller) error {
	return d.changeSeller(tx, c.SellerID, func(s Seller) (Seller, event.Event) {
		if s.Name == c.Name {
			return s, nil // nothing changed, nothing to record
		}
		s.Name = c.Name
		return s, SellerRenamed{SellerID: c.SellerID, Name: c.Name}
	})
}

// changeSeller passes a seller row to fn, then writes the row fn returns and
// records its event; a nil event means nothing changed, and nothing is
// written. (Rows go by value so that they stay on the stack.)
func (d *Domain) changeSeller(tx store.Tx, id string, fn func(Seller) (Seller, event.Event)) error {
	s, ver, err := d.seller(tx, id)
	if err != nil {
		return err
	}
	s, e := fn(s)
	if e == nil {
		return nil
	}
	if _, err := d.Sellers.PutIf(tx, id, s, ver); err != nil {
		return err
	}
	store.RecordIn(tx, sellerPrefix, id, e)
	return nil
}

func (d *Domain) rateSeller(_ context.Context, tx store.Tx, c RateSeller) error {
	return d.changeSeller(tx, c.SellerID, func(s Seller) (Seller, event.Event) {
		if s.Rating == c.Rating {
			return s, nil
		}
		s.Rating = c.Rating
		return s, SellerRated{SellerID: c.SellerID, Rating: c.Rating}
	})
}

func (d *Domain) listProduct(_ context.Context, tx store.Tx, c ListProduct) error {
	if _, _, err := d.seller(tx, c.SellerID); err != nil {
		return err
	}
	p := Product{ID: c.ProductID, SellerID: c.SellerID, Title: c.Title, Description: c.Description, PriceCents: c.PriceCents, Stock: c.Stock, PriceSeq: 1}
	if err := d.Products.Insert(tx, c.ProductID, p); err != nil {
		return err
	}
	if err := d.Prices.Insert(tx, PriceKey{ProductID: c.ProductID, Seq: 1}, PriceRow{Cents: c.PriceCents}); err != nil {
		return err
	}
	store.RecordIn(tx, productPrefix, c.ProductID, ProductListed{
		ProductID: c.ProductID, SellerID: c.SellerID, Title: c.Title,
		Description: c.Description, PriceCents: c.PriceCents, Stock: c.Stock,
	})
	return nil
}

func (d *Domain) updatePrice(_ context.Context, tx store.Tx, c UpdatePrice) error {
	return d.changeProduct(tx, c.ProductID, c.SellerID, c.ExpectedVersion, func(p Product) (Product, event.Event, error) {
		if p.PriceCents == c.PriceCents {
			return p, nil, nil
		}
		old := p.PriceCents
		p.PriceCents = c.PriceCents
		p.PriceSeq++
		if err := d.Prices.Insert(tx, PriceKey{ProductID: c.ProductID, Seq: p.PriceSeq}, PriceRow{Cents: c.PriceCents}); err != nil {
			return p, nil, err
		}
		return p, PriceChanged{ProductID: c.ProductID, OldCents: old, NewCents: c.PriceCents}, nil
	})
}

// changeProduct loads a product the seller owns, checks the version the
// command expects (0: no check), passes the row to fn and, when fn returns
// an event, writes the row fn returns (optimistically, at the version read)
// and records the event. A nil event means nothing changed: nothing is
// written or recorded.
func (d *Domain) changeProduct(tx store.Tx, id, seller string, expected uint64, fn func(Product) (Product, event.Event, error)) error {
	p, ver, err := d.ownedProduct(tx, id, seller)
	if err != nil {
		return err
	}
	return d.writeProduct(tx, p, ver, expected, fn)
}

// writeProduct is changeProduct after the product is loaded and allowed.
func (d *Domain) writeProduct(tx store.Tx, p Product, ver, expected uint64, fn func(Product) (Product, event.Event, error)) error {
	if expected != 0 {
		if err := command.ExpectVersion(tx, productStream(p.ID), expected); err != nil {
			return err
		}
	}
	p, e, err := fn(p)
	if err != nil || e == nil {
		return err
	}
	if _, err := d.Products.PutIf(tx, p.ID, p, ver); err != nil {
		return err
	}
	store.RecordIn(tx, productPrefix, p.ID, e)
	return nil
}

func (d *Domain) updateStock(_ context.Context, tx store.Tx, c UpdateStock) error {
	return d.changeProduct(tx, c.ProductID, c.SellerID, c.ExpectedVersion, func(p Product) (Product, event.Event, error) {
		if p.Stock == c.Stock {
			return p, nil, nil
		}
		p.Stock = c.Stock
		return p, StockChanged{ProductID: c.ProductID, Stock: c.Stock}, nil
	})
}

// reserveStock decrements stock inside the unit of work, so concurrent
// reservations serialise on the product row (a conflicting one is re-run by
// Retry and re-reads) and none is lost.
func (d *Domain) reserveStock(_ context.Context, tx store.Tx, c ReserveStock) error {
	p, ver, err := d.product(tx, c.ProductID)
	if err != nil {
		return err
	}
	return d.writeProduct(tx, p, ver, 0, func(p Product) (Product, event.Event, error) {
		if p.Stock < c.Quantity {
			return p, nil, command.Reject(CodeInsufficientStock,
				fmt.Sprintf("product %s has %d in stock, %d requested", p.ID, p.Stock, c.Quantity))
		}
		p.Stock -= c.Quantity
		return p, StockReserved{ProductID: p.ID, Quantity: c.Quantity, Stock: p.Stock}, nil
	})
}

func (d *Domain) restock(_ context.Context, tx store.Tx, c Restock) error {
	return d.changeProduct(tx, c.ProductID, c.SellerID, 0, func(p Product) (Product, event.Event, error) {
		if p.Stock > MaxStock-c.Quantity {
			return p, nil, command.Reject(CodeStockLimit,
				fmt.Sprintf("product %s has %d in stock; adding %d would exceed %d", p.ID, p.Stock, c.Quantity, MaxStock))
		}
		p.Stock += c.Quantity
		return p, Restocked{ProductID: p.ID, Quantity: c.Quantity, Stock: p.Stock}, nil
	})
}

func (d *Domain) updateDetails(_ context.Context, tx store.Tx, c UpdateDetails) error {
	return d.changeProduct(tx, c.ProductID, c.SellerID, c.ExpectedVersion, func(p Product) (Product, event.Event, error) {
		if p.Title == c.Title && p.Description == c.Description {
			return p, nil, nil
		}
		p.Title, p.Description = c.Title, c.Description
		return p, DetailsChanged{ProductID: c.ProductID, Title: c.Title, Description: c.Description}, nil
	})
}

func (d *Domain) submitReview(_ context.Context, tx store.Tx, c SubmitReview) error {
	if ok, err := d.Products.Exists(tx, c.ProductID); err != nil {
		return err
	} else if !ok {
		return store.NotFound("product", c.ProductID)
	}
	r := Review{ID: c.ReviewID, ProductID: c.ProductID, Author: c.Author, Rating: c.Rating, Text: c.Text}
	if err := d.Reviews.Insert(tx, c.ReviewID, r); err != nil {
		return err
	}
	store.RecordIn(tx, productPrefix, c.ProductID, ReviewSubmitted{
		ReviewID: c.ReviewID, ProductID: c.ProductID, Author: c.Author, Rating: c.Rating, Text: c.Text,
	})
	return nil
}

func (d *Domain) setShipping(_ context.Context, tx store.Tx, c SetShipping) error {
	if _, _, err := d.ownedProduct(tx, c.ProductID, c.SellerID); err != nil {
		return err
	}
	if c.ExpectedVersion != 0 {
		if err := command.ExpectVersion(tx, productStream(c.ProductID), c.ExpectedVersion); err != nil {
			return err
		}
	}
	cur, _, err := d.Shipping.Get(tx, c.ProductID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if slices.Equal(cur, c.Options) {
		return nil // the same options (or none, again): nothing to record
	}
	opts := append([]ShippingOption(nil), c.Options...) // the caller keeps its slice
	if _, err := d.Shipping.Put(tx, c.ProductID, opts); err != nil {
		return err
	}
	store.RecordIn(tx, productPrefix, c.ProductID, ShippingSet{ProductID: c.ProductID, Options: opts})
	return nil
}
