// Package jsonstr appends JSON strings without reflection, for the kit's
// hand-rolled encoders (the errcode envelope, the access log). The two
// encoders must match two different references byte for byte, so the
// escaping rules differ by [Style]; everything else is shared.
package jsonstr

import "unicode/utf8"

// Style selects whose escaping a string gets.
type Style bool

const (
	// EncodingJSON escapes as encoding/json: also <, > and & (as \u003c…)
	// and the \b and \f short forms.
	EncodingJSON Style = true
	// Slog escapes as log/slog's JSONHandler: no HTML escaping, \b and \f
	// as \u0008 and \u000c.
	Slog Style = false
)

// HexDigits are the lower-case hex digits used in \u escapes.
const HexDigits = "0123456789abcdef"

// Append appends s quoted and escaped in style st: \" \\ \n \r \t short
// forms, other control bytes as \u00XX, invalid UTF-8 as \ufffd, U+2028
// and U+2029 escaped.
func Append(b []byte, s string, st Style) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (st == Slog || (c != '<' && c != '>' && c != '&')) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b' && st == EncodingJSON:
				b = append(b, '\\', 'b')
			case c == '\f' && st == EncodingJSON:
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', HexDigits[c>>4], HexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', HexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
