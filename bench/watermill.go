package bench

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/cqrskit/cqrs/examples/catalog"
)

// Watermill is the catalog's UpdatePrice and SubmitReview through
// Watermill's components/cqrs on its in-memory gochannel pub/sub, the way
// its documentation wires it: a command bus and command processor, an event
// bus and event processor, JSON marshaling, one router. The command handler
// validates the command, runs the floor's write-model code (ownership check,
// row writes, price history) and publishes an event; the event handler
// applies it to the floor's product view and signals Applied, so a caller
// that sends a command and waits on Applied has measured "command in, read
// model updated".
type Watermill struct {
	floor    *Floor
	pubsub   *gochannel.GoChannel
	router   *message.Router
	commands *cqrs.CommandBus
	cancel   context.CancelFunc
	done     chan struct{}
	// Applied receives one value per event applied to the view.
	Applied chan struct{}
}

// NewWatermill wires Watermill around floor (its write model and view) and
// starts the router.
func NewWatermill(floor *Floor) (*Watermill, error) {
	logger := watermill.NopLogger{}
	w := &Watermill{floor: floor, Applied: make(chan struct{}, 1), done: make(chan struct{})}
	w.pubsub = gochannel.NewGoChannel(gochannel.Config{}, logger)
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		return nil, err
	}
	w.router = router
	marshaler := cqrs.JSONMarshaler{}
	w.commands, err = cqrs.NewCommandBusWithConfig(w.pubsub, cqrs.CommandBusConfig{
		GeneratePublishTopic: func(p cqrs.CommandBusGeneratePublishTopicParams) (string, error) {
			return "commands." + p.CommandName, nil
		},
		Marshaler: marshaler,
		Logger:    logger,
	})
	if err != nil {
		return nil, err
	}
	events, err := cqrs.NewEventBusWithConfig(w.pubsub, cqrs.EventBusConfig{
		GeneratePublishTopic: func(p cqrs.GenerateEventPublishTopicParams) (string, error) {
			return "events." + p.EventName, nil
		},
		Marshaler: marshaler,
		Logger:    logger,
	})
	if err != nil {
		return nil, err
	}
	cmdProc, err := cqrs.NewCommandProcessorWithConfig(router, cqrs.CommandProcessorConfig{
		GenerateSubscribeTopic: func(p cqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) {
			return "commands." + p.CommandName, nil
		},
		SubscriberConstructor: func(cqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return w.pubsub, nil
		},
		Marshaler: marshaler,
		Logger:    logger,
	})
	if err != nil {
		return nil, err
	}
	evProc, err := cqrs.NewEventProcessorWithConfig(router, cqrs.EventProcessorConfig{
		GenerateSubscribeTopic: func(p cqrs.EventProcessorGenerateSubscribeTopicParams) (string, error) {
			return "events." + p.EventName, nil
		},
		SubscriberConstructor: func(cqrs.EventProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return w.pubsub, nil
		},
		Marshaler: marshaler,
		Logger:    logger,
	})
	if err != nil {
		return nil, err
	}

	err = cmdProc.AddHandlers(
		cqrs.NewCommandHandler("UpdatePrice", func(ctx context.Context, c *catalog.UpdatePrice) error {
			if err := c.Validate(); err != nil {
				return err
			}
			floor.mu.Lock()
			e, changed, err := floor.updatePriceLocked(*c)
			floor.mu.Unlock()
			if err != nil || !changed {
				w.signal() // nothing to project: the caller must not wait forever
				return err
			}
			return events.Publish(ctx, &e)
		}),
		cqrs.NewCommandHandler("SubmitReview", func(ctx context.Context, c *catalog.SubmitReview) error {
			if err := c.Validate(); err != nil {
				return err
			}
			floor.mu.Lock()
			e, err := floor.submitReviewLocked(*c)
			floor.mu.Unlock()
			if err != nil {
				return err
			}
			return events.Publish(ctx, &e)
		}),
	)
	if err != nil {
		return nil, err
	}
	err = evProc.AddHandlers(
		cqrs.NewEventHandler("PriceView", func(_ context.Context, e *FloorPriceChanged) error {
			floor.View.PriceChanged(*e)
			w.signal()
			return nil
		}),
		cqrs.NewEventHandler("ReviewView", func(_ context.Context, e *FloorReviewSubmitted) error {
			floor.View.ReviewSubmitted(*e)
			w.signal()
			return nil
		}),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() {
		defer close(w.done)
		_ = router.Run(ctx)
	}()
	<-router.Running()
	return w, nil
}

func (w *Watermill) signal() {
	select {
	case w.Applied <- struct{}{}:
	default:
	}
}

// Send publishes cmd (a pointer to a catalog command) on the command bus.
func (w *Watermill) Send(ctx context.Context, cmd any) error {
	return w.commands.Send(ctx, cmd)
}

// Close stops the router and the pub/sub.
func (w *Watermill) Close() error {
	w.cancel()
	<-w.done
	if err := w.router.Close(); err != nil {
		return fmt.Errorf("watermill router: %w", err)
	}
	return w.pubsub.Close()
}
