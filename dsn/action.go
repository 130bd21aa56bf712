package dsn

// Action is the Action field of a recipient in a delivery status
// notification (RFC 3464 §2.3.3).
type Action string

// Actions.
const (
	Failed    Action = "failed"
	Delayed   Action = "delayed"
	Relayed   Action = "relayed"
	Delivered Action = "delivered"
)
