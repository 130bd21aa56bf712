// Package dsn is delivery status notifications as one struct model, Report,
// that is both composed and parsed: Report.Compose writes a multipart/report
// (RFC 6522) with a message/delivery-status part (RFC 3464), or their
// internationalized forms (RFC 6533) when SMTPUTF8 is set; Parse reads one
// back into the same model. ReadReturned reads what a report returns of the
// original message (RET=HDRS or RET=FULL, RFC 3461 §4.3) within a limit.
//
// Invariants, whatever the model or the input holds:
//   - Compose writes CRLF line endings and no line longer than 998 bytes
//     (RFC 5322 §2.1.1); header fields are valid UTF-8 without control
//     characters (Clean), ASCII unless SMTPUTF8 (ASCIIOnly); a report
//     that Parse accepted, with a Reporting-MTA, Compose writes again and
//     Parse reads back with the same recipients (FuzzParseDSN).
//   - Every loop that breaks lines of remote bytes consumes at least one
//     byte per iteration (CutAt), so it ends in time linear in their length.
//   - ReadReturned streams the original and holds at most limit+1 bytes of
//     it; Parse reads at most maxParseBytes of one part.
//
// dsn imports nothing of edgerelay's: the caller (outbound's Reporter) maps
// its queue's envelope onto a Report.
package dsn
