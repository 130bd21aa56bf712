package smtp

// ReadersHeld is how many connections hold a read buffer (edgerelay patch:
// idle connections hold none).
func ReadersHeld() int64 { return readersHeld.Load() }
