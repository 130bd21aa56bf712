// Package outbound is the delivery side of edgerelay: a worker that leases
// messages from the queue, routes them (gateway or MX), delivers them with
// the go-smtp client, classifies replies per recipient (4xx temporary, 5xx
// permanent), reschedules with backoff, expires them after the queue
// lifetime, and produces delivery status notifications (RFC 3464) that are
// written to the dedicated bounce store and returned to the sender.
//
// outbound imports queue and never relay: the two sides meet only in queue.
package outbound
