package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
)

// safeKey returns key when it is short and made of plain bytes, else a
// hash of it, so that no request can put odd bytes or braces (which would
// break the hash tag) into a Redis key.
func safeKey(key string) string {
	if len(key) > 0 && len(key) <= MaxRawKeyLen && plainKey(key) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "h:" + hex.EncodeToString(sum[:16])
}

func plainKey(key string) bool {
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '/', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}
