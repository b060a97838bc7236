/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jwt.h - verification of HS256 JSON Web Tokens (RFC 7519, RFC 7515 compact
 * serialisation) with a shared secret.
 *
 * Only "alg": "HS256" is accepted ("none" and every other algorithm are
 * refused). The signature is compared in constant time; "exp" and "nbf"
 * are honoured with a leeway in seconds.
 */
#ifndef GATHERD_HTTP_LISTEN_JWT_H
#define GATHERD_HTTP_LISTEN_JWT_H

#include <gatherd/common.h>
#include <jansson.h>

/** jwt_verify_hs256() - verify the compact token @tok (@len bytes) with
 * @key at time @now_s (Unix seconds) allowing @leeway_s of clock skew.
 * On success returns 0 and, when @claims is not NULL, stores the payload
 * object there (the caller json_decref()s it). On failure *@why (optional)
 * receives a static reason and the return value is GD_EPARSE (malformed
 * token), GD_ENOTSUP (an algorithm other than HS256), GD_EPERM (bad
 * signature) or GD_ERANGE (expired or not yet valid). */
int jwt_verify_hs256(const char *tok, size_t len, const unsigned char *key, size_t key_len,
                     int64_t now_s, int64_t leeway_s, json_t **claims, const char **why);

/** jwt_b64url_decode() - decode unpadded base64url @in (@len bytes) into
 * @out (room for len * 3 / 4 + 1 bytes). Returns the decoded length, or -1
 * on a character outside the alphabet, padding, or an impossible length. */
long jwt_b64url_decode(const char *in, size_t len, unsigned char *out);

/** jwt_claim_text() - the claim @name of @claims as text in @out (@cap
 * bytes): strings as they are, integers in decimal. Returns false when the
 * claim is missing, of another type, empty or does not fit. */
bool jwt_claim_text(const json_t *claims, const char *name, char *out, size_t cap);

#endif
