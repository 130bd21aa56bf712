// Package s3util holds the small S3 helpers that the S3-backed parts of
// edgerelay share (the SQS + S3 queue backend and the S3 bounce store):
// what "this object does not exist" looks like (IsNotFound: NoSuchKey or a
// 404, never NoSuchBucket, so a missing bucket is not taken for a missing
// object), and the multipart upload part size (DefaultPartSize), so that
// bodies and reports are uploaded in parts, never held whole.
//
// It imports the AWS SDK and nothing of ours.
package s3util
