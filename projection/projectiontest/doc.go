// Package projectiontest helps test projections: a given/when/then fixture
// that feeds a projector committed records without a store or a runner, and
// two conformance suites shaped like testing/slogtest.Run: RunCheckpointStore,
// which every projection.CheckpointStore must pass, and RunReplay, for
// Runner.Replay over any projector kind. It uses only the standard library's testing package.
//
// A projector test states the events, then checks the view:
//
//	func TestRating(t *testing.T) {
//		v := catalog.NewProductView()
//		projectiontest.Given(t, v,
//			projectiontest.On("product/p1", catalog.Reviewed{Stars: 4}),
//			projectiontest.On("product/p1", catalog.Reviewed{Stars: 2}),
//		).Then("rating", v.Get("p1").Rating, 3.0)
//	}
//
// The fixture numbers records the way a log does: positions 1, 2, 3...,
// versions counted per stream, and commit times one second apart starting at
// 2024-01-01T00:00:00Z, unless At says otherwise. Record IDs are derived
// from the position, so two fixtures fed the same events produce identical
// records.
package projectiontest
