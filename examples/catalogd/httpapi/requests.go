package httpapi

// Request bodies. Path parameters ({id}) name the entity; fields here are
// the rest of the command. Unknown fields are refused.

// RegisterSellerRequest is the body of POST /v1/sellers.
type RegisterSellerRequest struct {
	SellerID string  `json:"seller_id"`
	Name     string  `json:"name"`
	Rating   float64 `json:"rating"`
}

// RenameSellerRequest is the body of PUT /v1/sellers/{id}/name.
type RenameSellerRequest struct {
	Name string `json:"name"`
}

// RateSellerRequest is the body of PUT /v1/sellers/{id}/rating.
type RateSellerRequest struct {
	Rating float64 `json:"rating"`
}

// ListProductRequest is the body of POST /v1/products.
type ListProductRequest struct {
	ProductID   string `json:"product_id"`
	SellerID    string `json:"seller_id"`
	Title       string `json:"title"`
	Description string `json:"description"`
	PriceCents  int64  `json:"price_cents"`
	Stock       int    `json:"stock"`
}

// UpdatePriceRequest is the body of PUT /v1/products/{id}/price.
type UpdatePriceRequest struct {
	SellerID   string `json:"seller_id"`
	PriceCents int64  `json:"price_cents"`
}

// UpdateDetailsRequest is the body of PUT /v1/products/{id}/details.
type UpdateDetailsRequest struct {
	SellerID    string `json:"seller_id"`
	Title       string `json:"title"`
	Description string `json:"description"`
}

// UpdateStockRequest is the body of PUT /v1/products/{id}/stock.
type UpdateStockRequest struct {
	SellerID string `json:"seller_id"`
	Stock    int    `json:"stock"`
}

// ReserveStockRequest is the body of POST /v1/products/{id}/reservations.
type ReserveStockRequest struct {
	Quantity int `json:"quantity"`
}

// RestockRequest is the body of POST /v1/products/{id}/restock.
type RestockRequest struct {
	SellerID string `json:"seller_id"`
	Quantity int    `json:"quantity"`
}

// SubmitReviewRequest is the body of POST /v1/products/{id}/reviews.
type SubmitReviewRequest struct {
	ReviewID string `json:"review_id"`
	Author   string `json:"author"`
	Rating   int    `json:"rating"`
	Text     string `json:"text"`
}

// SetShippingRequest is the body of PUT /v1/products/{id}/shipping.
type SetShippingRequest struct {
	SellerID string         `json:"seller_id"`
	Options  []ShippingJSON `json:"options"`
}
