package sqs

import (
	"context"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// HeartbeatEvery is heartbeatEvery, for the external tests.
var HeartbeatEvery = heartbeatEvery

// GiveBack is giveBackIfDone, for the external tests.
func GiveBack(q *Queue, ctx context.Context, msgs []sqstypes.Message) error {
	return q.giveBackIfDone(ctx, msgs)
}

// ViewReceipt is the receipt handle held in message id's operator copy.
func (q *Queue) ViewReceipt(ctx context.Context, id string) (string, error) {
	v, err := q.readView(ctx, id)
	if err != nil || v == nil {
		return "", err
	}
	return v.Receipt, nil
}
