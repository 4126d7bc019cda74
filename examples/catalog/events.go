package catalog

import (
	"time"

	"github.com/cqrskit/cqrs/event"
)

// Event type names are part of the log format: never change them.

// SellerRegistered: a seller joined.
type SellerRegistered struct {
	SellerID string
	Name     string
	Rating   float64
}

// SellerRenamed: a seller changed its display name.
type SellerRenamed struct {
	SellerID string
	Name     string
}

// SellerRated: the marketplace updated a seller's rating.
type SellerRated struct {
	SellerID string
	Rating   float64
}

// ProductListed: a seller put a product on sale.
type ProductListed struct {
	ProductID   string
	SellerID    string
	Title       string
	Description string
	PriceCents  int64
	Stock       int
}

// PriceChanged: a product's price changed.
type PriceChanged struct {
	ProductID string
	OldCents  int64
	NewCents  int64
}

// StockChanged: a product's stock level was set.
type StockChanged struct {
	ProductID string
	Stock     int
}

// StockReserved: Quantity units were taken out of a product's stock; Stock
// is the level after.
type StockReserved struct {
	ProductID string
	Quantity  int
	Stock     int
}

// Restocked: Quantity units were added to a product's stock; Stock is the
// level after.
type Restocked struct {
	ProductID string
	Quantity  int
	Stock     int
}

// DetailsChanged: a product's title or description changed.
type DetailsChanged struct {
	ProductID   string
	Title       string
	Description string
}

// ReviewSubmitted: a customer reviewed a product.
type ReviewSubmitted struct {
	ReviewID  string
	ProductID string
	Author    string
	Rating    int
	Text      string
}

// ShippingSet: a product's shipping options were replaced.
type ShippingSet struct {
	ProductID string
	Options   []ShippingOption
}

// ShippingOption is one way to ship a product.
type ShippingOption struct {
	Method     string
	PriceCents int64
	Days       int
}

// PricePoint is a price that took effect at a time.
type PricePoint struct {
	At    time.Time
	Cents int64
}

// EventType implements event.Event.
func (SellerRegistered) EventType() string { return "catalog.SellerRegistered" }

// EventType implements event.Event.
func (SellerRenamed) EventType() string { return "catalog.SellerRenamed" }

// EventType implements event.Event.
func (SellerRated) EventType() string { return "catalog.SellerRated" }

// EventType implements event.Event.
func (ProductListed) EventType() string { return "catalog.ProductListed" }

// EventType implements event.Event.
func (PriceChanged) EventType() string { return "catalog.PriceChanged" }

// EventType implements event.Event.
func (StockChanged) EventType() string { return "catalog.StockChanged" }

// EventType implements event.Event.
func (StockReserved) EventType() string { return "catalog.StockReserved" }

// EventType implements event.Event.
func (Restocked) EventType() string { return "catalog.Restocked" }

// EventType implements event.Event.
func (DetailsChanged) EventType() string { return "catalog.DetailsChanged" }

// EventType implements event.Event.
func (ReviewSubmitted) EventType() string { return "catalog.ReviewSubmitted" }

// EventType implements event.Event.
func (ShippingSet) EventType() string { return "catalog.ShippingSet" }

// RegisterEvents adds the catalog's event types to r, for durable stores
// that encode payloads.
func RegisterEvents(r *event.Registry) error {
	for _, f := range []func(*event.Registry) error{
		event.Register[SellerRegistered], event.Register[SellerRenamed], event.Register[SellerRated],
		event.Register[ProductListed], event.Register[PriceChanged], event.Register[StockChanged],
		event.Register[StockReserved], event.Register[Restocked],
		event.Register[DetailsChanged], event.Register[ReviewSubmitted], event.Register[ShippingSet],
	} {
		if err := f(r); err != nil {
			return err
		}
	}
	return nil
}

// Stream names are a prefix and an ID. Handlers record with
// store.RecordIn(tx, productPrefix, id, e), which lets store.Memory find a
// known stream without building its name.
const (
	productPrefix = "product/"
	sellerPrefix  = "seller/"
)

func productStream(id string) string { return productPrefix + id }
