package sqs

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Ready reports whether SQS answers for the queue now (one
// GetQueueAttributes call, the cheapest authenticated request; errors are
// classified as Check classifies them). /readyz asks it on every probe, so
// an outage or revoked credentials turn the front end unready and a
// recovery makes it ready again with no restart. S3 is not probed here:
// a PUT per probe would cost more than the probe is worth, and a failing
// PUT already answers 451 to the client.
func (q *Queue) Ready(ctx context.Context) error {
	_, err := q.o.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.o.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		return fmt.Errorf("sqs queue: %w", classifyAWS(err, "sqs:GetQueueAttributes"))
	}
	return nil
}
