package main

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	"golang.org/x/term"
)

// newLogger builds the process logger. RELAY_LOG_FORMAT=auto: tint (colour,
// time of day) when w is a terminal, JSON otherwise — what container log
// collectors expect. text: tint with colours and time of day on a terminal;
// elsewhere (a file, a pipe, a collector) the same lines without colour
// codes and with the full RFC 3339 time, date and zone included.
func newLogger(c *Config, w io.Writer) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(c.LogLevel) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	terminal := false
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		terminal = true
	}
	switch {
	case terminal && c.LogFormat != "json":
		return slog.New(tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly}))
	case c.LogFormat == "text":
		return slog.New(tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: rfc3339Millis, NoColor: true}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// rfc3339Millis is RFC 3339 with milliseconds, as slog's JSON handler
// writes times.
const rfc3339Millis = "2006-01-02T15:04:05.000Z07:00"
