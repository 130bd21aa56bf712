package s3util

import (
	"errors"
	"net/http"

	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// DefaultPartSize is the multipart upload part size for message bodies and
// stored reports.
const DefaultPartSize = 8 << 20

// IsNotFound reports whether err says that an object does not exist:
// NoSuchKey from GetObject, or a 404 from HeadObject. Without s3:ListBucket,
// S3 answers 403 instead of 404 for a missing key; Check verifies that it
// does not. NoSuchBucket is not "not found" here.
func IsNotFound(err error) bool {
	var nsk *s3types.NoSuchKey
	var nf *s3types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
		return false
	}
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}
