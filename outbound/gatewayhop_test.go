package outbound

// gatewayHop is the first gateway of the main list as an SMTP hop: the
// legacy single-gateway Options that most tests use make a list of one.
func (w *Worker) gatewayHop() *smtpHop { return w.main.hops[0].(*smtpHop) }
