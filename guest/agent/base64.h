/* Base64 (RFC 4648, with padding) for file payloads. Header-only because two
 * programs need it: the static agent (built from guest/agent/ alone) and the
 * daemon's client in guest/lib/. */
#ifndef PV_BASE64_H
#define PV_BASE64_H

#include <stdlib.h>
#include <string.h>

static const char pv_b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encode `len` bytes; NUL-terminated, caller frees; NULL when out of memory. */
static inline char *pv_b64_encode(const unsigned char *in, size_t len)
{
	char *out = malloc((len + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	char *o = out;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		*o++ = pv_b64_chars[v >> 18];
		*o++ = pv_b64_chars[(v >> 12) & 63];
		*o++ = pv_b64_chars[(v >> 6) & 63];
		*o++ = pv_b64_chars[v & 63];
	}
	if (i < len) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);
		*o++ = pv_b64_chars[v >> 18];
		*o++ = pv_b64_chars[(v >> 12) & 63];
		*o++ = i + 1 < len ? pv_b64_chars[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static inline int pv_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode; whitespace is skipped, padding optional. Returns 0 with *out
 * (caller frees, never NULL on success) and *out_len, -EINVAL on a bad
 * character, -ENOMEM. */
static inline int pv_b64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
	unsigned char *buf = malloc(len / 4 * 3 + 3);
	if (!buf)
		return -12; /* ENOMEM, without pulling errno.h into every includer */
	size_t n = 0;
	unsigned acc = 0;
	int bits = 0, pad = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		int v = pv_b64_value(c);
		if (v < 0 || pad) {
			free(buf);
			return -22; /* EINVAL */
		}
		acc = ((acc << 6) | (unsigned)v) & 0xffffu;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (unsigned char)(acc >> bits);
		}
	}
	*out = buf;
	*out_len = n;
	return 0;
}

#endif
