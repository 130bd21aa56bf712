package queue

// HeartbeatEvery is heartbeatEvery, for the external tests.
var HeartbeatEvery = heartbeatEvery
